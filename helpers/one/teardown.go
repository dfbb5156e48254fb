package one

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goerrs "github.com/OpenNebula/one/src/oca/go/src/goca/errors"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/vm"
)

// Teardown removes what d's run created: the VM (terminate-hard, then waits for DONE so
// the image is released), the template, and the image only if the run registered it.
// Objects are found by id and by the run's name prefix, which also catches one whose
// allocation was interrupted before its id came back.
func (c *Client) Teardown(ctx context.Context, d *Deployment) error {
	imageID, templateID, vmID := d.IDs()
	d.mu.Lock()
	created, allocated := d.imageCreated, d.allocated
	d.mu.Unlock()
	if !allocated {
		c.log("teardown: run %s created nothing", d.RunID)
		return nil
	}
	if !created {
		imageID = -1
	}
	return c.patient().remove(ctx, d.RunID+"-", vmID, templateID, imageID)
}

// patient is c for removals: giving up early on an unreachable oned would leave the
// run's objects behind, so it waits at least teardownPatience (bounded by the context).
func (c *Client) patient() *Client {
	p := *c
	p.Unreachable = max(c.Unreachable, teardownPatience)
	return &p
}

const teardownPatience = 5 * time.Minute

// Clean removes every object whose name starts with NamePrefix: what earlier runs
// could not remove (a killed process, an unreachable front-end). It is `make one-clean`.
func (c *Client) Clean(ctx context.Context) error {
	return c.patient().remove(ctx, NamePrefix, -1, -1, -1)
}

// remove deletes VMs, templates and images named prefix* plus the given ids (-1: none).
func (c *Client) remove(ctx context.Context, prefix string, vmID, templateID, imageID int) error {
	var left []string
	vms, err := c.matching(ctx, "VMs", prefix, vmID, c.liveVMs)
	if err != nil {
		return c.leftover(prefix, []string{fmt.Sprintf("VMs named %s* (listing failed: %v)", prefix, err)})
	}
	for _, id := range vms {
		if err := c.terminate(ctx, id); err != nil {
			left = append(left, fmt.Sprintf("VM %d (%v): onevm terminate --hard %d", id, err, id))
		}
	}
	templates, err := c.matching(ctx, "templates", prefix, templateID, c.templates)
	if err != nil {
		return c.leftover(prefix, append(left, fmt.Sprintf("templates and images named %s* (listing failed: %v)", prefix, err)))
	}
	images, err := c.matching(ctx, "images", prefix, imageID, c.images)
	if err != nil {
		return c.leftover(prefix, append(left, fmt.Sprintf("images named %s* (listing failed: %v)", prefix, err)))
	}
	for _, id := range templates {
		err := c.read(ctx, fmt.Sprintf("delete template %d", id), func(ctx context.Context) error {
			return c.ctrl.Template(id).DeleteContext(ctx)
		})
		if err != nil && !isNoExists(err) {
			left = append(left, fmt.Sprintf("template %d (%v): onetemplate delete %d", id, err, id))
			continue
		}
		c.log("teardown: deleted template %d", id)
	}
	for _, id := range images {
		if err := c.deleteImage(ctx, id); err != nil {
			left = append(left, fmt.Sprintf("image %d (%v): oneimage delete %d", id, err, id))
		}
	}
	if len(left) > 0 {
		return c.leftover(prefix, left)
	}
	return nil
}

func (c *Client) leftover(prefix string, left []string) error {
	return fmt.Errorf("teardown left objects on %s; remove them with `make one-clean` or by hand:\n  %s",
		c.Endpoint, strings.Join(left, "\n  "))
}

// matching are the ids of objects named prefix*, plus id if listed.
func (c *Client) matching(ctx context.Context, what, prefix string, id int, l lister) ([]int, error) {
	objs, err := c.list(ctx, what, l)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, o := range objs {
		if strings.HasPrefix(o.name, prefix) || o.id == id {
			ids = append(ids, o.id)
		}
	}
	return ids, nil
}

// liveVMs lists the VMs not DONE.
func (c *Client) liveVMs(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.VMs().InfoContext(ctx)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, v := range pool.VMs {
		objs = append(objs, named{v.ID, v.Name})
	}
	return objs, nil
}

func (c *Client) templates(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.Templates().InfoContext(ctx)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, t := range pool.Templates {
		objs = append(objs, named{t.ID, t.Name})
	}
	return objs, nil
}

func (c *Client) images(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.Images().InfoContext(ctx)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, img := range pool.Images {
		objs = append(objs, named{img.ID, img.Name})
	}
	return objs, nil
}

// terminate terminate-hards VM id and waits until it is DONE (or gone).
func (c *Client) terminate(ctx context.Context, id int) error {
	err := c.read(ctx, fmt.Sprintf("terminate VM %d", id), func(ctx context.Context) error {
		return c.ctrl.VM(id).TerminateHardContext(ctx)
	})
	var re *goerrs.ResponseError
	switch {
	case err == nil:
		c.log("teardown: terminate-hard VM %d", id)
	case isNoExists(err):
		return nil
	case errors.As(err, &re) && re.Code == goerrs.OneActionError:
		// Already on its way out (EPILOG) or DONE: wait below.
	default:
		return err
	}
	for {
		s, err := c.vmStatus(ctx, id)
		if isNoExists(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if vm.State(s.state) == vm.Done {
			c.log("teardown: VM %d DONE", id)
			return nil
		}
		if err := sleep(ctx, c.Poll); err != nil {
			return fmt.Errorf("VM %d still %s: %w", id, s.name, err)
		}
	}
}

// deleteImage deletes image id, waiting while a VM still holds it (USED until the VM is
// DONE on every host).
func (c *Client) deleteImage(ctx context.Context, id int) error {
	for {
		err := c.read(ctx, fmt.Sprintf("delete image %d", id), func(ctx context.Context) error {
			return c.ctrl.Image(id).DeleteContext(ctx)
		})
		var re *goerrs.ResponseError
		switch {
		case err == nil:
			c.log("teardown: deleted image %d", id)
			return nil
		case isNoExists(err):
			return nil
		case errors.As(err, &re) && re.Code == goerrs.OneActionError:
			if serr := sleep(ctx, c.Poll); serr != nil {
				return fmt.Errorf("%w (still refused: %s)", serr, re.Msg)
			}
		default:
			return err
		}
	}
}
