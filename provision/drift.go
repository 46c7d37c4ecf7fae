package provision

import (
	"context"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Run runs the drift checker until ctx ends: every drift-interval it
// re-reads the traffic-flow settings of every configured router, marks
// the ones that differ from the plan as drifted (with the differences in
// StateDetail) and, with drift-reapply, applies the plan again. It returns
// nil when ctx is cancelled. With drift-interval 0 it just waits.
func (p *Provisioner) Run(ctx context.Context) error {
	if p.cfg.DriftInterval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(p.cfg.DriftInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.CheckDrift(ctx)
		}
	}
}

// CheckDrift checks every configured (or drifted) router once and returns
// how many drifted.
func (p *Provisioner) CheckDrift(ctx context.Context) int {
	routers, err := p.store.ListRouters(ctx)
	if err != nil {
		p.logger.Error("drift check cannot list routers", "error", err)
		return 0
	}
	drifted := 0
	for _, r := range routers {
		if ctx.Err() != nil {
			break
		}
		if r.State != store.StateConfigured && r.State != store.StateDrift {
			continue
		}
		d, err := p.checkDrift(ctx, r.Name)
		if err != nil {
			p.logger.Warn("drift check failed", "router", r.Name, "error", err)
			continue
		}
		if d {
			drifted++
		}
	}
	p.metrics.drifted.Set(float64(drifted))
	return drifted
}

// checkDrift compares one router with the plan and records the result.
func (p *Provisioner) checkDrift(ctx context.Context, name string) (bool, error) {
	var plan *Plan
	_, err := p.operation(ctx, name, "drift", func(r *store.Router, rec *recorder) error {
		err := p.withSession(ctx, r, rec, func(s *session) error {
			var err error
			plan, err = p.plan(ctx, s)
			return err
		})
		if err != nil {
			return err
		}
		rec.changes = plan.Lines()
		if plan.InPlace() {
			rec.summary = "no drift"
			if r.State == store.StateDrift {
				r.State, r.StateDetail = store.StateConfigured, "no drift"
				return p.store.UpdateRouter(ctx, r)
			}
			return nil
		}
		rec.summary = fmt.Sprintf("%d settings differ from the plan", len(plan.Changes))
		r.State, r.StateDetail = store.StateDrift, "drift: "+joinChanges(plan.Changes)
		return p.store.UpdateRouter(ctx, r)
	})
	if err != nil {
		return false, err
	}
	if plan.InPlace() {
		return false, nil
	}
	p.logger.Warn("router configuration drifted", "router", name, "changes", plan.Lines())
	if p.cfg.DriftReapply {
		if _, err := p.Apply(ctx, name); err != nil {
			return true, err
		}
	}
	return true, nil
}
