package provision

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/flowbox/flowbox/routeros"
)

// Keys of store.Router.Previous. "target" records that no target for our
// address and port existed before flowbox added one.
const (
	prevTarget = "target"
	noneValue  = "(none)"
)

// trafficFlowSteps returns the steps that point a router at flowbox: first
// the target (so no flow is exported before it has somewhere to go), then
// /ip/traffic-flow itself with enabled last.
func (p *Provisioner) trafficFlowSteps() []Step {
	return []Step{
		{Name: "target", Check: p.checkTarget, Apply: p.applyTarget, Undo: p.undoTarget},
		{Name: "traffic-flow", Check: p.checkTrafficFlow, Apply: p.applyTrafficFlow, Undo: p.undoTrafficFlow},
	}
}

// wantedTrafficFlow lists the /ip/traffic-flow properties flowbox sets, in
// the order they are sent (enabled last).
func (p *Provisioner) wantedTrafficFlow() [][2]string {
	return [][2]string{
		{"interfaces", p.cfg.Interfaces},
		{"active-flow-timeout", routeros.FormatDuration(p.cfg.ActiveFlowTimeout)},
		{"inactive-flow-timeout", routeros.FormatDuration(p.cfg.InactiveFlowTimeout)},
		{"enabled", "true"},
	}
}

func (p *Provisioner) checkTrafficFlow(ctx context.Context, s *session) ([]Change, error) {
	r, err := s.run(ctx, "/ip/traffic-flow/print")
	if err != nil {
		return nil, err
	}
	if len(r.Re) != 1 {
		return nil, fmt.Errorf("/ip/traffic-flow/print returned %d rows, want 1", len(r.Re))
	}
	cur := r.Re[0]
	var changes []Change
	for _, kv := range p.wantedTrafficFlow() {
		have, ok := cur[kv[0]]
		if ok && sameValue(kv[0], have, kv[1]) {
			continue
		}
		changes = append(changes, Change{Step: "traffic-flow", Property: "traffic-flow/" + kv[0],
			Current: have, New: kv[1], key: kv[0], op: "set"})
	}
	return changes, nil
}

func (p *Provisioner) applyTrafficFlow(ctx context.Context, s *session, changes []Change) error {
	words := []string{"/ip/traffic-flow/set"}
	for _, c := range changes {
		s.recordPrevious(c.Property, c.Current)
	}
	// Previous values are saved before the router changes, so a drop in
	// the middle still lets undo restore them.
	if err := s.save(ctx); err != nil {
		return err
	}
	for _, c := range changes {
		words = append(words, "="+c.key+"="+c.New)
	}
	_, err := s.run(ctx, words...)
	return err
}

func (p *Provisioner) undoTrafficFlow(ctx context.Context, s *session) ([]Change, error) {
	r, err := s.run(ctx, "/ip/traffic-flow/print")
	if err != nil {
		return nil, err
	}
	if len(r.Re) != 1 {
		return nil, fmt.Errorf("/ip/traffic-flow/print returned %d rows, want 1", len(r.Re))
	}
	words := []string{"/ip/traffic-flow/set"}
	var changes []Change
	var enabled *Change
	for _, kv := range p.wantedTrafficFlow() {
		prop := "traffic-flow/" + kv[0]
		old, ok := s.r.Previous[prop]
		if !ok {
			continue
		}
		cur := r.Re[0][kv[0]]
		if sameValue(kv[0], cur, old) {
			continue
		}
		c := Change{Step: "traffic-flow", Property: prop, Current: cur, New: old, key: kv[0], op: "set"}
		if kv[0] == "enabled" {
			enabled = &c
			continue
		}
		changes = append(changes, c)
	}
	// Disable first, then restore the timeouts.
	if enabled != nil {
		changes = append([]Change{*enabled}, changes...)
	}
	if len(changes) == 0 {
		return nil, nil
	}
	for _, c := range changes {
		words = append(words, "="+c.key+"="+c.New)
	}
	if _, err := s.run(ctx, words...); err != nil {
		return nil, err
	}
	return changes, nil
}

// targetWanted returns the properties flowbox wants on its target (besides
// the address), as RouterOS prints them.
func (p *Provisioner) targetWanted() [][2]string {
	return [][2]string{
		{"version", "9"},
		{"v9-template-refresh", strconv.Itoa(p.cfg.TemplateRefresh)},
		{"v9-template-timeout", routeros.FormatDuration(p.cfg.TemplateTimeout)},
		{"disabled", "false"},
	}
}

// targets reads the target list and learns which syntax the router speaks.
func (s *session) targets(ctx context.Context) ([]routeros.Row, error) {
	r, err := s.run(ctx, "/ip/traffic-flow/target/print")
	if err != nil {
		return nil, err
	}
	for _, row := range r.Re {
		if _, ok := row["dst-address"]; ok {
			s.legacy = false
			s.syntaxKnown = true
		} else if _, ok := row["address"]; ok {
			s.legacy = true
			s.syntaxKnown = true
		}
	}
	return r.Re, nil
}

// isOurs tells whether a target row points at our collector address and
// port (in either syntax). Targets have no comment field, so this is the
// only identity a target has.
func (s *session) isOurs(row routeros.Row) bool {
	if a, ok := row["address"]; ok {
		ap, err := netip.ParseAddrPort(a)
		return err == nil && ap.Addr().Unmap() == s.collector.Addr() && ap.Port() == s.collector.Port()
	}
	a, err := netip.ParseAddr(row["dst-address"])
	if err != nil || a.Unmap() != s.collector.Addr() {
		return false
	}
	port := "2055" // RouterOS default when the router omits it
	if v, ok := row["port"]; ok {
		port = v
	}
	return port == strconv.Itoa(int(s.collector.Port()))
}

func (s *session) targetDescription() string {
	if s.legacy {
		return "address=" + s.collector.String()
	}
	return fmt.Sprintf("dst-address=%s port=%d", s.collector.Addr(), s.collector.Port())
}

// decideSource decides the src-address of our target (see source.go) and
// updates the router's ExporterAddr accordingly; it is saved with the
// router.
func (p *Provisioner) decideSource(ctx context.Context, s *session, ours routeros.Row) error {
	others, err := p.others(ctx, s.r)
	if err != nil {
		return err
	}
	s.sourceIn = s.sourceInput(ours)
	if s.source, err = decideSource(s.sourceIn, others); err != nil {
		return err
	}
	s.r.ExporterAddr = s.source.Exporter
	return nil
}

func (p *Provisioner) checkTarget(ctx context.Context, s *session) ([]Change, error) {
	rows, err := s.targets(ctx)
	if err != nil {
		return nil, err
	}
	var ours routeros.Row
	for _, row := range rows {
		if s.isOurs(row) {
			ours = row
			break
		}
	}
	if err := p.decideSource(ctx, s, ours); err != nil {
		return nil, err
	}
	pin := s.source.Pin
	if ours == nil {
		words := []string{s.targetDescription()}
		if pin.IsValid() {
			words = append(words, "src-address="+pin.String())
		}
		for _, kv := range p.targetWanted() {
			if kv[0] != "disabled" {
				words = append(words, kv[0]+"="+kv[1])
			}
		}
		return []Change{{Step: "target", Property: "target", Current: noneValue, New: strings.Join(words, " "), op: "add"}}, nil
	}
	var changes []Change
	if have := ours["src-address"]; pin.IsValid() && have != pin.String() {
		if have == "" {
			have = "0.0.0.0"
		}
		changes = append(changes, Change{Step: "target", Property: "target/src-address", Current: have, New: pin.String(),
			key: "src-address", id: ours[".id"], op: "set"})
	}
	for _, kv := range p.targetWanted() {
		have, ok := ours[kv[0]]
		if ok && sameValue(kv[0], have, kv[1]) {
			continue
		}
		if !ok && kv[0] == "disabled" {
			continue
		}
		changes = append(changes, Change{Step: "target", Property: "target/" + kv[0], Current: have, New: kv[1],
			key: kv[0], id: ours[".id"], op: "set"})
	}
	if len(changes) == 0 && s.r.TargetID != ours[".id"] {
		// Remember which entry is ours; it is re-verified by value before
		// every change.
		s.r.TargetID = ours[".id"]
	}
	return changes, nil
}

func (p *Provisioner) applyTarget(ctx context.Context, s *session, changes []Change) error {
	if len(changes) == 1 && changes[0].op == "add" {
		return p.addTarget(ctx, s)
	}
	words := []string{"/ip/traffic-flow/target/set", "=.id=" + changes[0].id}
	if !s.r.TargetCreated {
		for _, c := range changes {
			s.recordPrevious(c.Property, c.Current)
		}
	}
	s.r.TargetID = changes[0].id
	if s.source.Pin.IsValid() {
		s.r.ExporterAddr = s.source.Pin
	}
	if err := s.save(ctx); err != nil {
		return err
	}
	for _, c := range changes {
		words = append(words, "="+c.key+"="+c.New)
	}
	_, err := s.run(ctx, words...)
	return err
}

func (p *Provisioner) addTarget(ctx context.Context, s *session) error {
	// Record before adding: if the router drops the connection after the
	// add but before its reply, the next apply finds the target by value
	// and still knows flowbox created it.
	s.recordPrevious(prevTarget, noneValue)
	if s.r.Previous[prevTarget] == noneValue {
		s.r.TargetCreated = true
	}
	pin := s.source.Pin
	if pin.IsValid() {
		s.r.ExporterAddr = pin
	}
	if err := s.save(ctx); err != nil {
		return err
	}
	add := func(legacy bool) (*routeros.Reply, error) {
		words := []string{"/ip/traffic-flow/target/add"}
		if legacy {
			words = append(words, "=address="+s.collector.String())
		} else {
			words = append(words, "=dst-address="+s.collector.Addr().String(), "=port="+strconv.Itoa(int(s.collector.Port())))
			if pin.IsValid() {
				words = append(words, "=src-address="+pin.String())
			}
		}
		for _, kv := range p.targetWanted() {
			words = append(words, "="+kv[0]+"="+kv[1])
		}
		return s.run(ctx, words...)
	}
	r, err := add(s.legacy)
	if err != nil && !s.syntaxKnown && !s.legacy && errors.Is(err, routeros.ErrUnknown) {
		// An empty target table tells nothing about the syntax: old v6
		// routers only know address=IP:port.
		p.logger.Info("router does not know dst-address, using the legacy target syntax", "router", s.r.Name)
		s.legacy, s.syntaxKnown = true, true
		if pin.IsValid() {
			// Without src-address, this router cannot be told apart from
			// the one that may export from where its flows would come.
			// It exports nothing to flowbox (no target was added), so it
			// keeps the address decided for it: the other router's flows
			// stay the other router's.
			return &ExporterConflictError{Router: s.r.Name, Other: s.source.Other, Addr: s.source.Shared,
				Kind: ConflictLegacy, Version: s.r.Version}
		}
		r, err = add(true)
	}
	if errors.Is(err, routeros.ErrExists) {
		// Someone (or an earlier, interrupted apply) added it: the
		// re-check reconciles by value.
		return nil
	}
	if err != nil {
		return err
	}
	s.r.TargetID = r.Done["ret"]
	return s.save(ctx)
}

func (p *Provisioner) undoTarget(ctx context.Context, s *session) ([]Change, error) {
	rows, err := s.targets(ctx)
	if err != nil {
		return nil, err
	}
	var ours routeros.Row
	for _, row := range rows {
		if s.isOurs(row) {
			ours = row
			break
		}
	}
	if ours == nil {
		return nil, nil // nothing of ours left: undo is idempotent
	}
	id := ours[".id"]
	if s.r.TargetCreated {
		if _, err := s.run(ctx, "/ip/traffic-flow/target/remove", "=.id="+id); err != nil {
			return nil, err
		}
		return []Change{{Step: "target", Property: "target", Current: s.targetDescription(), New: "(removed)", id: id, op: "remove"}}, nil
	}
	words := []string{"/ip/traffic-flow/target/set", "=.id=" + id}
	var changes []Change
	for _, kv := range append(p.targetWanted(), [2]string{"src-address"}) {
		old, ok := s.r.Previous["target/"+kv[0]]
		if !ok || sameValue(kv[0], ours[kv[0]], old) {
			continue
		}
		changes = append(changes, Change{Step: "target", Property: "target/" + kv[0], Current: ours[kv[0]], New: old, key: kv[0], id: id, op: "set"})
		words = append(words, "="+kv[0]+"="+old)
	}
	if len(changes) == 0 {
		return nil, nil
	}
	if _, err := s.run(ctx, words...); err != nil {
		return nil, err
	}
	return changes, nil
}

// sameValue compares a RouterOS value with a wanted one: durations by
// length ("60s" == "1m" == "00:01:00"), booleans by truth ("yes" ==
// "true"), the rest as strings.
func sameValue(key, have, want string) bool {
	if have == want {
		return true
	}
	if strings.HasSuffix(key, "timeout") {
		a, err1 := routeros.ParseDuration(have)
		b, err2 := routeros.ParseDuration(want)
		return err1 == nil && err2 == nil && a == b
	}
	switch key {
	case "enabled", "disabled":
		return parseBool(have) == parseBool(want)
	}
	return false
}

func parseBool(s string) bool {
	switch strings.ToLower(s) {
	case "true", "yes":
		return true
	}
	return false
}
