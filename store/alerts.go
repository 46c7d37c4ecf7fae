package store

import (
	"context"
	"encoding/json"
	"time"
)

// Kinds of alerts (Alert.Kind). Inbound attacks on one local address are
// named by what dominates their traffic; outbound abuse is a customer's
// device misbehaving; the others are the health of a router's export and
// of its traffic.
const (
	// AlertVolumetric: inbound traffic to one local address far above its
	// baseline and above the floors, without a dominant signature.
	AlertVolumetric = "volumetric"
	// AlertUDPAmplification: inbound volumetric attack dominated by large
	// UDP from reflection ports (19, 53, 123, 389, 1900, 11211...).
	AlertUDPAmplification = "udp-amplification"
	// AlertSYNFlood: inbound TCP packets with only SYN set, tiny.
	AlertSYNFlood = "syn-flood"
	// AlertPortScan: one inside address to many destination hosts or
	// ports, mostly single-packet SYNs.
	AlertPortScan = "port-scan"
	// AlertSMTPSpam: one inside address to many distinct hosts on port 25.
	AlertSMTPSpam = "smtp-spam"
	// AlertFlowFlood: one device opening thousands of flows per second.
	AlertFlowFlood = "flow-flood"
	// AlertExportStopped: a router that exported flows sends none.
	AlertExportStopped = "export-stopped"
	// AlertFlowLoss: sequence gaps say the collector misses a router's
	// flows beyond a threshold.
	AlertFlowLoss = "flow-loss"
	// AlertTemplateMissing: a router's data sets keep waiting for
	// templates that never come.
	AlertTemplateMissing = "template-missing"
	// AlertClockSkew: a router's flow times are far from the collector's
	// clock.
	AlertClockSkew = "clock-skew"
	// AlertTrafficCollapse: a router's or an interface's traffic fell far
	// below its baseline (an uplink down).
	AlertTrafficCollapse = "traffic-collapse"
	// AlertCoverageLow: a router's flows fall short of its interface
	// counters (coverage below the threshold), with the likely cause.
	AlertCoverageLow = "coverage-low"
)

// AlertKinds lists every alert kind, in the order the console shows them.
var AlertKinds = []string{AlertVolumetric, AlertUDPAmplification, AlertSYNFlood, AlertPortScan, AlertSMTPSpam,
	AlertFlowFlood, AlertExportStopped, AlertFlowLoss, AlertTemplateMissing, AlertClockSkew, AlertTrafficCollapse, AlertCoverageLow}

// Alert severities.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// Alert is one detected anomaly, from its start to its resolution. The
// JSON form is the one of `flowbox alerts --json` and /api/v1/alerts.
type Alert struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	// RouterID and Router name the router whose flows showed it.
	RouterID int64  `json:"router_id"`
	Router   string `json:"router"`
	// Target is the address attacked or misbehaving; for the health kinds
	// the router's name, or "router/interface" for an interface.
	Target string `json:"target"`
	// Subscriber is the target's customer name when known.
	Subscriber string `json:"subscriber,omitempty"`
	// Direction is "in" (an attack on the target, a collapse of inbound
	// traffic) or "out" (abuse by the target); "" for export health.
	Direction string `json:"direction"`
	// Started is when the detector first saw it; Updated its last
	// evaluation while active; Ended when it resolved (nil while active).
	Started time.Time  `json:"started"`
	Updated time.Time  `json:"updated"`
	Ended   *time.Time `json:"ended"`
	// Peaks over the alert's life (rates as the detector estimated them,
	// scaled by sampling).
	PeakBps       float64 `json:"peak_bps"`
	PeakPps       float64 `json:"peak_pps"`
	PeakFlowsPerS float64 `json:"peak_flows_per_s"`
	// PeakAt is when the peak bps (or the kind's main measure) was seen.
	PeakAt time.Time `json:"peak_at"`
	// Summary says what happened in one sentence.
	Summary string `json:"summary"`
	// Evidence is what was seen at the peak.
	Evidence AlertEvidence `json:"evidence"`
	// AckedBy and AckedAt record an operator's acknowledgement.
	AckedBy string     `json:"acked_by,omitempty"`
	AckedAt *time.Time `json:"acked_at,omitempty"`
}

// AlertEvidence is what an alert's detector saw at its peak.
type AlertEvidence struct {
	// TopSources are the remote addresses sending the most (inbound), or
	// the destinations the target contacted most (outbound).
	TopSources []AlertTop `json:"top_sources,omitempty"`
	// TopPorts are "proto/port" keys: the remote source ports of an
	// inbound attack (the reflection service), the destination ports of
	// outbound abuse.
	TopPorts []AlertTop `json:"top_ports,omitempty"`
	// Measures are the detector's numbers at the peak, by name
	// ("distinct_hosts", "syn_share", "baseline_bps", "lost_share"...).
	Measures map[string]float64 `json:"measures,omitempty"`
}

// AlertTop is one ranked entry of an alert's evidence.
type AlertTop struct {
	Key     string `json:"key"`
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

// AlertFilter selects alerts.
type AlertFilter struct {
	// Active keeps only the alerts that have not resolved.
	Active bool
	// Since keeps alerts active at or after it (zero: no bound).
	Since time.Time
	// Kind, Router (name) and Target keep exact matches ("" any).
	Kind, Router, Target string
	// Limit bounds the answer (0: 1000), newest first.
	Limit int
}

// AlertEventType says what happened to an alert.
type AlertEventType string

// Alert events, in an alert's life order.
const (
	AlertOpened   AlertEventType = "opened"
	AlertUpdated  AlertEventType = "updated"
	AlertResolved AlertEventType = "resolved"
)

// AlertEvent is one change of an alert, as the notifiers and the mitigator
// learn it.
type AlertEvent struct {
	Type  AlertEventType `json:"event"`
	Alert Alert          `json:"alert"`
}

// MitigationAction is one change flowbox made (or, in dry-run, would have
// made) on a router to mitigate an alert: the audit log.
type MitigationAction struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	AlertID int64     `json:"alert_id"`
	Router  string    `json:"router"`
	// Action is "add" or "remove"; Kind is "address-list" or
	// "blackhole".
	Action string `json:"action"`
	Kind   string `json:"kind"`
	// List is the address list's name (address-list kind).
	List    string `json:"list,omitempty"`
	Address string `json:"address"`
	// Timeout is the entry's timeout on the router.
	Timeout time.Duration `json:"timeout_ns"`
	DryRun  bool          `json:"dry_run"`
	// Result is "ok", "skipped: <why>" or "error: <message>".
	Result string `json:"result"`
}

// NotificationAttempt is one delivery of an alert event to a notification
// channel, as recorded for the console.
type NotificationAttempt struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	AlertID int64     `json:"alert_id"`
	Channel string    `json:"channel"`
	Event   string    `json:"event"`
	// Attempt counts from 1.
	Attempt int    `json:"attempt"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// Alerts is the alert store: lifecycle, acknowledgement, history with its
// own retention, the mitigation audit log and the notification log.
type Alerts interface {
	// OpenAlert stores a new alert and sets its ID.
	OpenAlert(ctx context.Context, a *Alert) error
	// UpdateAlert stores an alert's peaks, evidence, summary, kind and
	// Updated/Ended times.
	UpdateAlert(ctx context.Context, a *Alert) error
	// AckAlert acknowledges an alert (store.ErrNotFound when unknown); an
	// acknowledged alert keeps its first acknowledgement.
	AckAlert(ctx context.Context, id int64, by string, at time.Time) error
	// GetAlert returns one alert (store.ErrNotFound when unknown).
	GetAlert(ctx context.Context, id int64) (Alert, error)
	// ListAlerts returns the alerts of a filter, newest first.
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// EndActiveAlerts ends every alert still active at at (the detector's
	// state does not survive a restart); it returns how many.
	EndActiveAlerts(ctx context.Context, at time.Time) (int64, error)
	// PruneAlerts deletes the alerts that ended before before, with their
	// mitigation and notification logs.
	PruneAlerts(ctx context.Context, before time.Time) (int64, error)
	// AddMitigationAction appends to the mitigation audit log.
	AddMitigationAction(ctx context.Context, m *MitigationAction) error
	// MitigationActions returns the newest actions (of one alert when
	// alertID > 0).
	MitigationActions(ctx context.Context, alertID int64, limit int) ([]MitigationAction, error)
	// AddNotificationAttempt appends to the notification log.
	AddNotificationAttempt(ctx context.Context, n *NotificationAttempt) error
	// NotificationAttempts returns the newest attempts (of one alert when
	// alertID > 0).
	NotificationAttempts(ctx context.Context, alertID int64, limit int) ([]NotificationAttempt, error)
}

// MarshalEvidence encodes evidence for storage.
func MarshalEvidence(e AlertEvidence) string {
	b, err := json.Marshal(e)
	if err != nil {
		return "{}" // cannot happen: plain values
	}
	return string(b)
}

// DetectorStatus is the alert detector's own health, shown on the Alerts
// page and in /api/v1/alerts/status: its state is bounded, and what did
// not fit is counted.
type DetectorStatus struct {
	// Enabled is false when alerts.enabled is off.
	Enabled bool `json:"enabled"`
	// Hosts is the number of (router, address) entries tracked; MaxHosts
	// its bound (alerts.max-hosts).
	Hosts    int `json:"hosts"`
	MaxHosts int `json:"max_hosts"`
	// HostsDropped counts flows whose host found no room in the state
	// (not evaluated for per-host detectors; still counted per router).
	HostsDropped uint64 `json:"hosts_dropped"`
	// Evaluations counts the evaluation rounds; LastEvaluation is the
	// last one's time and EvaluationSeconds its duration.
	Evaluations       uint64    `json:"evaluations"`
	LastEvaluation    time.Time `json:"last_evaluation"`
	EvaluationSeconds float64   `json:"evaluation_seconds"`
	// Active is the number of alerts active now.
	Active int `json:"active"`
	// StoreErrors counts alerts that could not be written to the store
	// (still notified and kept in memory).
	StoreErrors uint64 `json:"store_errors"`
	// EventsDropped counts the alert events the mitigation's full queue
	// refused (each notification channel counts its own, in
	// NotificationChannelStatus.Dropped).
	EventsDropped uint64 `json:"events_dropped"`
}

// NotificationChannelStatus is one notification channel's counters, shown
// on the Alerts page.
type NotificationChannelStatus struct {
	Name string `json:"name"`
	// Type is webhook, slack, discord, telegram or email.
	Type string `json:"type"`
	// Sent counts delivered messages; Failed attempts that failed
	// (each retry counts); Dropped messages given up (retries exhausted,
	// queue full, rate limited).
	Sent    uint64 `json:"sent"`
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"`
	// RateLimited counts messages held back by the rate limit (folded
	// into a summary message or dropped).
	RateLimited uint64 `json:"rate_limited"`
	// Queued is the number of messages waiting.
	Queued    int        `json:"queued"`
	LastSent  *time.Time `json:"last_sent,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// MitigationStatus is one router's mitigation state, shown on the Alerts
// page.
type MitigationStatus struct {
	Router string `json:"router"`
	// Enabled is the router's opt-in; DryRun logs without changing the
	// router.
	Enabled bool `json:"enabled"`
	DryRun  bool `json:"dry_run"`
	// Entries is the number of entries flowbox holds on the router now;
	// MaxEntries its cap.
	Entries    int `json:"entries"`
	MaxEntries int `json:"max_entries"`
	// Added, Removed, Skipped (cap reached, dry run) and Errors count the
	// changes since start.
	Added   uint64 `json:"added"`
	Removed uint64 `json:"removed"`
	Skipped uint64 `json:"skipped"`
	Errors  uint64 `json:"errors"`
	// LastError is the last failure's message.
	LastError string `json:"last_error,omitempty"`
}
