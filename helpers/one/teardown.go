package one

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goerrs "github.com/OpenNebula/one/src/oca/go/src/goca/errors"
	"github.com/OpenNebula/one/src/oca/go/src/goca/parameters"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/image"
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
	return c.patient().remove(ctx, d.RunID+"-", 0, vmID, templateID, imageID)
}

// patient is c for removals: giving up early on an unreachable oned would leave the
// run's objects behind, so it waits at least teardownPatience (bounded by the context).
func (c *Client) patient() *Client {
	p := *c
	p.Unreachable = max(c.Unreachable, teardownPatience)
	return &p
}

const teardownPatience = 5 * time.Minute

// DefaultCleanAge is how old an object must be for Clean to remove it: a deploy run in
// progress (a nightly one takes up to a few hours) is never touched.
const DefaultCleanAge = 6 * time.Hour

// Clean removes the caller's objects whose name starts with NamePrefix and that are at
// least minAge old: what earlier runs could not remove (a killed process, an unreachable
// front-end). It is `make one-clean`.
func (c *Client) Clean(ctx context.Context, minAge time.Duration) error {
	return c.patient().remove(ctx, NamePrefix, minAge, -1, -1, -1)
}

// remove deletes the caller's VMs, templates and images named prefix* and at least
// minAge old, plus the given ids (-1: none).
func (c *Client) remove(ctx context.Context, prefix string, minAge time.Duration, vmID, templateID, imageID int) error {
	var left []string
	match := func(what string, id int, l lister) ([]int, error) {
		return c.matching(ctx, what, prefix, minAge, id, l)
	}
	vms, err := match("VMs", vmID, c.liveVMs)
	if err != nil {
		return c.leftover(prefix, []string{fmt.Sprintf("VMs named %s* (listing failed: %v)", prefix, err)})
	}
	for _, id := range vms {
		if err := c.terminate(ctx, id); err != nil {
			cmd := fmt.Sprintf("onevm terminate --hard %d", id)
			var stuck *stuckVM
			if errors.As(err, &stuck) {
				cmd = stuck.removeCommand()
			}
			left = append(left, fmt.Sprintf("VM %d (%v): %s", id, err, cmd))
		}
	}
	templates, err := match("templates", templateID, c.templates)
	if err != nil {
		return c.leftover(prefix, append(left, fmt.Sprintf("templates and images named %s* (listing failed: %v)", prefix, err)))
	}
	images, err := match("images", imageID, c.images)
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

// matching are the ids of objects named prefix* and at least minAge old, plus id if
// listed. Younger ones are named in the log, so a skipped leftover is not a mystery.
func (c *Client) matching(ctx context.Context, what, prefix string, minAge time.Duration, id int, l lister) ([]int, error) {
	objs, err := c.list(ctx, what, l)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, o := range objs {
		switch {
		case o.id == id:
		case !strings.HasPrefix(o.name, prefix):
			continue
		case minAge > 0 && time.Since(o.created) < minAge:
			c.log("skipped %s %d %q: created %s ago, younger than %s (a run in progress?)",
				strings.TrimSuffix(what, "s"), o.id, o.name, time.Since(o.created).Round(time.Minute), minAge)
			continue
		}
		ids = append(ids, o.id)
	}
	return ids, nil
}

// The listers below ask for the caller's own objects only (goca's PoolWhoMine): on a
// shared cloud, the objects of another user that happen to share the prefix (or a
// oneadmin's view of everyone's) are never touched. goca's default is PoolWhoAll.

// liveVMs lists the caller's VMs not DONE.
func (c *Client) liveVMs(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.VMs().InfoContext(ctx, parameters.PoolWhoMine, -1, -1, -1)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, v := range pool.VMs {
		objs = append(objs, named{v.ID, v.Name, time.Unix(int64(v.STime), 0)})
	}
	return objs, nil
}

func (c *Client) templates(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.Templates().InfoContext(ctx, parameters.PoolWhoMine)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, t := range pool.Templates {
		objs = append(objs, named{t.ID, t.Name, time.Unix(int64(t.RegTime), 0)})
	}
	return objs, nil
}

func (c *Client) images(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.Images().InfoContext(ctx, parameters.PoolWhoMine)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, img := range pool.Images {
		objs = append(objs, named{img.ID, img.Name, time.Unix(int64(img.RegTime), 0)})
	}
	return objs, nil
}

// terminate ends VM id and waits until it is DONE (or gone). oned takes terminate-hard
// only in some states (DispatchManager::terminate, src/dm/DispatchManagerActions.cc in
// OpenNebula 6.10 and 7.0): RUNNING, UNKNOWN, any *_FAILURE, SHUTDOWN, and every state
// outside ACTIVE; in PROLOG, BOOT, EPILOG and the other transitions it answers "wrong
// state". So the action is sent whenever the VM is in a state that takes it (again after
// a state change, e.g. RUNNING -> EPILOG_FAILURE), and the VM is read until DONE.
func (c *Client) terminate(ctx context.Context, id int) error {
	var sent terminateSend
	last := ""
	for {
		s, err := c.vmStatus(ctx, id)
		if isNoExists(err) {
			return nil
		}
		if err != nil && last != "" && ctx.Err() != nil {
			return &stuckVM{id: id, state: last, err: context.Cause(ctx)}
		}
		if err != nil {
			return err
		}
		last = s.name
		if vm.State(s.state) == vm.Done {
			c.log("teardown: VM %d DONE", id)
			return nil
		}
		if sent.due(s, time.Now()) {
			if err := c.terminateHard(ctx, id, s); err != nil {
				return err
			}
			sent = terminateSend{state: s.name, at: time.Now()}
		}
		if err := sleep(ctx, c.Poll); err != nil {
			return &stuckVM{id: id, state: s.name, err: err}
		}
	}
}

// terminateSend is the last terminate-hard teardown sent to a VM.
type terminateSend struct {
	state string
	at    time.Time
}

// resendAfter is how long a VM may stay in a state that took terminate-hard before the
// action is sent again (a frozen shutdown is overridden that way in oned).
const resendAfter = time.Minute

// due tells whether terminate-hard should be sent now to a VM in state s.
func (t terminateSend) due(s vmStatus, now time.Time) bool {
	if !terminable(s) {
		return false
	}
	switch {
	case t.at.IsZero():
		return true
	case s.name != t.state && vm.LCMState(s.lcm) != vm.Shutdown:
		return true // e.g. RUNNING took it, then the epilog failed: EPILOG_FAILURE takes it again
	default:
		return now.Sub(t.at) > resendAfter
	}
}

// terminable tells whether oned accepts terminate-hard in s (DispatchManager::terminate).
func terminable(s vmStatus) bool {
	switch vm.State(s.state) {
	case vm.Done:
		return false
	case vm.Active:
	default:
		return true // INIT, PENDING, HOLD, POWEROFF, STOPPED, SUSPENDED, UNDEPLOYED, CLONING*
	}
	switch vm.LCMState(s.lcm) {
	case vm.Running, vm.Unknown, vm.Shutdown:
		return true
	}
	return strings.HasSuffix(s.name, "_FAILURE")
}

// terminateHard sends terminate-hard; a "wrong state" answer (the VM moved on between
// the read and the action) is left to the next poll.
func (c *Client) terminateHard(ctx context.Context, id int, s vmStatus) error {
	err := c.read(ctx, fmt.Sprintf("terminate VM %d", id), func(ctx context.Context) error {
		return c.ctrl.VM(id).TerminateHardContext(ctx)
	})
	var re *goerrs.ResponseError
	switch {
	case err == nil:
		c.log("teardown: terminate-hard VM %d (%s)", id, s.name)
		return nil
	case isNoExists(err), errors.As(err, &re) && re.Code == goerrs.OneActionError:
		return nil
	default:
		return err
	}
}

// stuckVM is a VM teardown could not bring to DONE within its budget.
type stuckVM struct {
	id    int
	state string
	err   error
}

func (e *stuckVM) Error() string {
	return fmt.Sprintf("VM %d still %s: %v", e.id, e.state, e.err)
}

func (e *stuckVM) Unwrap() error { return e.err }

// removeCommand is what removes the VM by hand: terminate-hard where oned takes it,
// otherwise recover --delete, which oned takes in any state but DONE
// (DispatchManager::delete_vm).
func (e *stuckVM) removeCommand() string {
	if strings.HasPrefix(e.state, "ACTIVE/") && !strings.HasSuffix(e.state, "_FAILURE") &&
		e.state != "ACTIVE/RUNNING" && e.state != "ACTIVE/UNKNOWN" {
		return fmt.Sprintf("onevm recover --delete %d (or wait until it leaves %s, then onevm terminate --hard %d)", e.id, e.state, e.id)
	}
	return fmt.Sprintf("onevm terminate --hard %d", e.id)
}

// waitImageGone waits until oned no longer knows image id: a deleted image stays in
// DELETE until the datastore driver has removed its file (ImageManager::delete_image).
func (c *Client) waitImageGone(ctx context.Context, id int) error {
	for {
		var img *image.Image
		err := c.read(ctx, fmt.Sprintf("read image %d", id), func(ctx context.Context) (err error) {
			img, err = c.ctrl.Image(id).InfoContext(ctx, false)
			return err
		})
		switch {
		case isNoExists(err):
			c.log("teardown: deleted image %d", id)
			return nil
		case err != nil:
			return err
		case image.State(img.StateRaw) == image.Error:
			msg, _ := img.Template.GetStr("ERROR")
			return fmt.Errorf("image %d in ERROR while being deleted: %s", id, msg)
		}
		if err := sleep(ctx, c.Poll); err != nil {
			return fmt.Errorf("image %d still %s: %w", id, image.State(img.StateRaw), err)
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
			c.log("teardown: deleting image %d", id)
			return c.waitImageGone(ctx, id)
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
