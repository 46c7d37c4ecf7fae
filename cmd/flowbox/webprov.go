package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/flowbox/flowbox/alerts/mitigate"

	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// webProvisioner adapts the name-based provision.Provisioner to the
// id-based web.Provisioner the console uses. The answers of Apply, Undo and
// Verify are the history entries the provisioner recorded.
type webProvisioner struct {
	prov  *provision.Provisioner
	store *storage
	// learn, when set, reads a new router's subscribers and customer
	// prefixes right after it is added, before its flows start.
	learn func(ctx context.Context, r store.Router)
	// mit removes flowbox's mitigation entries on undo and remove.
	mit    *mitigate.Mitigator
	mitCfg mitigate.Config
}

var (
	_ web.Provisioner = webProvisioner{}
	_ web.Repinner    = webProvisioner{}
)

// CheckRepin returns a router's pinned certificate fingerprint and the one
// it presents now.
func (w webProvisioner) CheckRepin(ctx context.Context, id int64) (web.CertificateView, error) {
	name, err := w.name(ctx, id)
	if err != nil {
		return web.CertificateView{}, err
	}
	c, err := w.prov.CheckRepin(ctx, name)
	if err != nil {
		return web.CertificateView{}, err
	}
	return web.CertificateView{Pinned: c.Old, Presented: c.New, Changed: c.Old != c.New}, nil
}

// Repin pins the certificate the router presents now, when it has the
// confirmed fingerprint.
func (w webProvisioner) Repin(ctx context.Context, id int64, fingerprint string) (store.Router, error) {
	name, err := w.name(ctx, id)
	if err != nil {
		return store.Router{}, err
	}
	r, err := w.prov.Repin(ctx, name, fingerprint)
	if err != nil {
		return store.Router{}, err
	}
	return *r, nil
}

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
	switch n := len(p.Changes); n {
	case 0:
	case 1:
		out.Summary = fmt.Sprintf("1 change; flows will go to %s", p.Collector)
	default:
		out.Summary = fmt.Sprintf("%d changes; flows will go to %s", n, p.Collector)
	}
	if why := p.SourceReason(); why != "" {
		out.Summary += "; " + why
	}
	return out
}

// Add connects to the router, stores it and returns its plan. Without a
// name, the router is named after its identity (made unique).
func (w webProvisioner) Add(ctx context.Context, spec web.RouterSpec) (store.Router, web.Plan, error) {
	req := provision.AddRequest{Name: spec.Name, Address: spec.Address, TLS: spec.TLS,
		Username: spec.Username, Password: spec.Password, CreateUser: spec.CreateUser}
	if req.Name == "" {
		name, err := w.nameFromIdentity(ctx, req)
		if err != nil {
			return store.Router{}, web.Plan{}, err
		}
		req.Name = name
	}
	r, plan, err := w.prov.Add(ctx, req)
	if err != nil {
		return store.Router{}, web.Plan{}, err
	}
	if w.learn != nil {
		w.learn(ctx, *r)
	}
	return *r, webPlan(plan), nil
}

// nameFromIdentity connects once (a dry run) to learn the router's
// identity and returns it as a router name not yet in the inventory
// ("MikroTik", "MikroTik-2"...).
func (w webProvisioner) nameFromIdentity(ctx context.Context, req provision.AddRequest) (string, error) {
	req.DryRun = true
	req.Name = store.RouterNameFrom(req.Address, "router")
	probe, _, err := w.prov.Add(ctx, req)
	if err != nil {
		return "", err
	}
	base := store.RouterNameFrom(probe.Identity, req.Name)
	for i := 1; i <= 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%.60s-%d", base, i)
		}
		if _, err := w.store.GetRouter(ctx, name); errors.Is(err, store.ErrNotFound) {
			return name, nil
		} else if err != nil {
			return "", fmt.Errorf("cannot name router: %w", err)
		}
	}
	return "", fmt.Errorf("cannot name router: %q and its 99 variants are taken: %w", base, store.ErrExists)
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
	summary := res.Summary
	if w.mit != nil {
		n, err := undoMitigation(ctx, w.mit, w.mitCfg, name, func(string) {})
		if err != nil {
			return w.lastRun(ctx, id, "undo", store.ProvisionRun{Error: err.Error()}), err
		}
		if n > 0 {
			summary += fmt.Sprintf("; mitigation: removed %d entries", n)
		}
	}
	return w.lastRun(ctx, id, "undo", store.ProvisionRun{OK: true, Summary: summary}), nil
}

// Remove deletes the router, undoing flowbox's settings first when undo is
// set.
func (w webProvisioner) Remove(ctx context.Context, id int64, undo bool) error {
	name, err := w.name(ctx, id)
	if err != nil {
		return err
	}
	if undo && w.mit != nil {
		if _, err := undoMitigation(ctx, w.mit, w.mitCfg, name, func(string) {}); err != nil {
			return fmt.Errorf("%w (remove without undoing the router's settings to delete it anyway)", err)
		}
	}
	return w.prov.Remove(ctx, name, !undo)
}
