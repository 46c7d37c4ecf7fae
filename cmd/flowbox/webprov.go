package main

import (
	"context"
	"fmt"

	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// webProvisioner adapts the name-based provision.Provisioner to the
// id-based web.Provisioner the console uses. The answers of Apply, Undo and
// Verify are the history entries the provisioner recorded.
type webProvisioner struct {
	prov  *provision.Provisioner
	store *store.Store
}

var _ web.Provisioner = webProvisioner{}

func (w webProvisioner) name(ctx context.Context, id int64) (string, error) {
	r, err := w.store.GetRouterByID(ctx, id)
	if err != nil {
		return "", fmt.Errorf("cannot load router %d: %w", id, err)
	}
	return r.Name, nil
}

// lastRun returns the newest history entry of a router with the given
// action, or a run built from fallback when none was recorded.
func (w webProvisioner) lastRun(ctx context.Context, id int64, action string, fallback store.ProvisionRun) store.ProvisionRun {
	runs, err := w.store.ProvisionRuns(ctx, id, 5)
	if err == nil {
		for _, r := range runs {
			if r.Action == action {
				return r
			}
		}
	}
	fallback.RouterID, fallback.Action = id, action
	return fallback
}

func webPlan(p *provision.Plan) web.Plan {
	out := web.Plan{Summary: "nothing to change"}
	if p == nil {
		return out
	}
	for _, c := range p.Changes {
		out.Changes = append(out.Changes, web.Change{Path: c.Property, Old: c.Current, New: c.New})
	}
	if n := len(p.Changes); n > 0 {
		out.Summary = fmt.Sprintf("%d change(s); collector %s", n, p.Collector)
	}
	return out
}

// Add connects to the router, stores it and returns its plan.
func (w webProvisioner) Add(ctx context.Context, spec web.RouterSpec) (store.Router, web.Plan, error) {
	r, plan, err := w.prov.Add(ctx, provision.AddRequest{
		Name: spec.Name, Address: spec.Address, TLS: spec.TLS,
		Username: spec.Username, Password: spec.Password,
	})
	if err != nil {
		return store.Router{}, web.Plan{}, err
	}
	return *r, webPlan(plan), nil
}

// Plan computes what Apply would change.
func (w webProvisioner) Plan(ctx context.Context, id int64) (web.Plan, error) {
	name, err := w.name(ctx, id)
	if err != nil {
		return web.Plan{}, err
	}
	p, err := w.prov.Plan(ctx, name)
	if err != nil {
		return web.Plan{}, err
	}
	return webPlan(p), nil
}

// Apply converges the router to the plan.
func (w webProvisioner) Apply(ctx context.Context, id int64) (store.ProvisionRun, error) {
	name, err := w.name(ctx, id)
	if err != nil {
		return store.ProvisionRun{}, err
	}
	res, err := w.prov.Apply(ctx, name)
	if err != nil {
		return w.lastRun(ctx, id, "apply", store.ProvisionRun{Error: err.Error()}), err
	}
	return w.lastRun(ctx, id, "apply", store.ProvisionRun{OK: true, Summary: res.Summary}), nil
}

// Verify waits for the router's first flows.
func (w webProvisioner) Verify(ctx context.Context, id int64) (store.ProvisionRun, error) {
	name, err := w.name(ctx, id)
	if err != nil {
		return store.ProvisionRun{}, err
	}
	res, err := w.prov.Verify(ctx, name, 0)
	if err != nil {
		return w.lastRun(ctx, id, "verify", store.ProvisionRun{Error: err.Error()}), err
	}
	summary := "flows arrive"
	if res.Exporter.IsValid() {
		summary += " from " + res.Exporter.String()
	}
	if !res.OK {
		summary = res.Diagnosis
	}
	return w.lastRun(ctx, id, "verify", store.ProvisionRun{OK: res.OK, Summary: summary}), nil
}

// Undo removes flowbox's settings from the router.
func (w webProvisioner) Undo(ctx context.Context, id int64) (store.ProvisionRun, error) {
	name, err := w.name(ctx, id)
	if err != nil {
		return store.ProvisionRun{}, err
	}
	res, err := w.prov.Undo(ctx, name)
	if err != nil {
		return w.lastRun(ctx, id, "undo", store.ProvisionRun{Error: err.Error()}), err
	}
	return w.lastRun(ctx, id, "undo", store.ProvisionRun{OK: true, Summary: res.Summary}), nil
}

// Remove deletes the router, undoing flowbox's settings first when undo is
// set.
func (w webProvisioner) Remove(ctx context.Context, id int64, undo bool) error {
	name, err := w.name(ctx, id)
	if err != nil {
		return err
	}
	return w.prov.Remove(ctx, name, !undo)
}
