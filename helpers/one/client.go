// Package one deploys the SLM-Copilot appliance to OpenNebula with goca and removes
// everything a run created: preflight, image registration, a VM template with the
// resources and context the appliance needs, the boot followed state by state, the
// READY=YES the appliance reports through OneGate, and teardown that also finds
// objects by their run-id names, so an interrupted run leaves nothing behind.
package one

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"

	"github.com/OpenNebula/one/src/oca/go/src/goca"
	goerrs "github.com/OpenNebula/one/src/oca/go/src/goca/errors"
)

// Logf receives progress lines.
type Logf func(format string, args ...any)

// Client is a goca controller with the retry policy of a deploy: reads and removals
// ride out an oned that is briefly unreachable (front-ends restart); allocations are
// retried only when the request surely did not reach oned.
type Client struct {
	Endpoint string
	user     string
	ctrl     *goca.Controller
	log      Logf
	// Unreachable is how long oned may stay unreachable before a call gives up.
	Unreachable time.Duration
	// Poll is the interval between retries and between state reads.
	Poll time.Duration
}

// NewClient builds a client for endpoint with the session user:password. Nothing is
// sent until the first call.
func NewClient(endpoint, session string, log Logf) *Client {
	if log == nil {
		log = func(string, ...any) {}
	}
	httpClient := &http.Client{Timeout: time.Minute}
	return &Client{
		Endpoint:    endpoint,
		user:        User(session),
		ctrl:        goca.NewController(goca.NewClient(goca.OneConfig{Token: session, Endpoint: endpoint}, httpClient)),
		log:         log,
		Unreachable: 2 * time.Minute,
		Poll:        2 * time.Second,
	}
}

// Version is the preflight: it proves oned answers and accepts the credentials. It is
// not retried: an endpoint that does not answer at the start is most likely mistyped.
func (c *Client) Version(ctx context.Context) (string, error) {
	var v string
	err := c.retry(ctx, "ask oned its version", func(ctx context.Context) (err error) {
		v, err = c.ctrl.SystemVersionContext(ctx)
		return err
	}, func(error) bool { return false })
	return v, err
}

// read runs a call that is safe to repeat, retrying while oned is unreachable.
func (c *Client) read(ctx context.Context, what string, call func(context.Context) error) error {
	return c.retry(ctx, what, call, isUnreachable)
}

// create runs a call that must not be repeated once oned may have seen it.
func (c *Client) create(ctx context.Context, what string, call func(context.Context) error) error {
	return c.retry(ctx, what, call, isRefused)
}

func (c *Client) retry(ctx context.Context, what string, call func(context.Context) error, retryable func(error) bool) error {
	var since time.Time
	for {
		err := call(ctx)
		if err == nil {
			if !since.IsZero() {
				c.log("oned reachable again after %s", time.Since(since).Round(time.Second))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		}
		if !retryable(err) {
			return c.explain(what, err)
		}
		if since.IsZero() {
			since = time.Now()
			c.log("oned at %s unreachable while trying to %s (%v); retrying for up to %s", c.Endpoint, what, cause(err), c.Unreachable)
		}
		if time.Since(since) > c.Unreachable {
			return fmt.Errorf("%s: oned at %s unreachable for %s: %v; is the front-end up and -one.endpoint right?",
				what, c.Endpoint, time.Since(since).Round(time.Second), cause(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		case <-time.After(c.Poll):
		}
	}
}

// explain turns goca's errors into what the operator should look at.
func (c *Client) explain(what string, err error) error {
	var re *goerrs.ResponseError
	if errors.As(err, &re) && re.Code == goerrs.OneAuthenticationError {
		return fmt.Errorf("%s: oned at %s rejected the credentials of user %q (%s); check -one.auth, $ONE_AUTH or ~/.one/one_auth", what, c.Endpoint, c.user, re.Msg)
	}
	if isUnreachable(err) {
		return fmt.Errorf("%s: oned at %s unreachable: %v; is the front-end up and -one.endpoint right?", what, c.Endpoint, cause(err))
	}
	var ce *goerrs.ClientError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: no valid answer from oned at %s (is it an OpenNebula XML-RPC endpoint, usually http://FRONTEND:2633/RPC2?): %w", what, c.Endpoint, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isUnreachable tells whether err means oned could not be reached or answered with an
// HTTP error (a restarting front-end behind a proxy).
func isUnreachable(err error) bool {
	var ce *goerrs.ClientError
	if !errors.As(err, &ce) {
		return false
	}
	if ce.Code == goerrs.ClientRespHTTP && ce.HttpResp != nil {
		return ce.HttpResp.StatusCode >= 500
	}
	return ce.Code == goerrs.ClientReqHTTP
}

// isRefused tells whether the request surely never reached oned.
func isRefused(err error) bool {
	return isUnreachable(err) && errors.Is(cause(err), syscall.ECONNREFUSED)
}

// cause is what lies under goca's ClientError, which does not implement Unwrap.
func cause(err error) error {
	var ce *goerrs.ClientError
	if errors.As(err, &ce) && ce.Err != nil {
		return ce.Err
	}
	return err
}

// isNoExists tells whether oned says the object is gone.
func isNoExists(err error) bool {
	var re *goerrs.ResponseError
	return errors.As(err, &re) && re.Code == goerrs.OneNoExistsError
}
