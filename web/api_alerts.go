package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/flowbox/flowbox/store"
)

// Bounds of the alert API.
const (
	// defaultAlertsSince is how far back GET /alerts looks by default.
	defaultAlertsSince = 7 * 24 * time.Hour
	// defaultAlertsLimit and maxAlertsLimit bound a list of alerts.
	defaultAlertsLimit = 500
	maxAlertsLimit     = 1000
	// alertLogLimit bounds the mitigation and notification logs of one
	// alert's detail.
	alertLogLimit = 200
	// testNotificationTimeout bounds a test delivery (an SMTP server may
	// be slow to greet).
	testNotificationTimeout = 30 * time.Second
	// maxAlertParam bounds the router, target and channel names.
	maxAlertParam = 200
)

// errAlertsDisabled is the answer of every alert route when the server has
// no alert store or status (alerts.enabled is off).
const errAlertsDisabled = "alerts are disabled on this server (alerts.enabled in the configuration)"

// AlertDetail is one alert with its mitigation audit log and its
// notification attempts, newest first (GET /api/v1/alerts/{id}).
type AlertDetail struct {
	Alert         store.Alert                 `json:"alert"`
	Mitigation    []store.MitigationAction    `json:"mitigation"`
	Notifications []store.NotificationAttempt `json:"notifications"`
}

// AlertStatusView is the live state of detection, notification and
// mitigation (GET /api/v1/alerts/status).
type AlertStatusView struct {
	Detector      store.DetectorStatus              `json:"detector"`
	Notifications []store.NotificationChannelStatus `json:"notifications"`
	Mitigation    []store.MitigationStatus          `json:"mitigation"`
}

// TestNotificationRequest names the channel of a test message.
type TestNotificationRequest struct {
	Channel string `json:"channel"`
}

// TestNotificationResult is the answer of a delivered test message.
type TestNotificationResult struct {
	OK bool `json:"ok"`
}

// alertsEnabled answers 503 and returns false when the server has no alert
// store.
func (s *Server) alertsEnabled(w http.ResponseWriter) bool {
	if s.deps.Alerts == nil {
		writeError(w, http.StatusServiceUnavailable, errAlertsDisabled)
		return false
	}
	return true
}

// alertStatusEnabled is alertsEnabled for the live status.
func (s *Server) alertStatusEnabled(w http.ResponseWriter) bool {
	if s.deps.AlertStatus == nil {
		writeError(w, http.StatusServiceUnavailable, errAlertsDisabled)
		return false
	}
	return true
}

// boolParam reads an optional boolean parameter (1, true, 0, false...).
func boolParam(q url.Values, name string) (bool, error) {
	vs := q[name]
	if len(vs) == 0 || vs[0] == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(vs[0])
	if err != nil {
		return false, badf("%s: %q is not a boolean (1 or 0)", name, vs[0])
	}
	return b, nil
}

// parseSince reads since: an RFC 3339 time, or a duration before now
// ("24h", "90m", or days as "7d").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 3650 {
			return time.Time{}, badf("since: %q is neither RFC 3339 nor a duration such as 24h or 7d", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			return time.Time{}, badf("since: %q is neither RFC 3339 nor a duration such as 24h or 7d", v)
		}
	}
	return now.Add(-d), nil
}

// parseAlertFilter reads the query of GET /alerts: active, all, kind,
// router, target, since and limit.
func parseAlertFilter(r *http.Request, now time.Time) (store.AlertFilter, error) {
	var f store.AlertFilter
	q, err := queryValues(r)
	if err != nil {
		return f, err
	}
	if f.Active, err = boolParam(q, "active"); err != nil {
		return f, err
	}
	all, err := boolParam(q, "all")
	if err != nil {
		return f, err
	}
	if v := q.Get("since"); v != "" {
		if all {
			return f, badf("since: cannot be combined with all")
		}
		if f.Since, err = parseSince(v, now); err != nil {
			return f, err
		}
	} else if !all && !f.Active {
		f.Since = now.Add(-defaultAlertsSince)
	}
	if v := q.Get("kind"); v != "" {
		if !slices.Contains(store.AlertKinds, v) {
			return f, badf("kind: %q is not one of %s", v, strings.Join(store.AlertKinds, ", "))
		}
		f.Kind = v
	}
	for name, dst := range map[string]*string{"router": &f.Router, "target": &f.Target} {
		if v := q.Get(name); v != "" {
			if len(v) > maxAlertParam {
				return f, badf("%s: longer than %d characters", name, maxAlertParam)
			}
			*dst = v
		}
	}
	if f.Limit, err = intParam(q, "limit", defaultAlertsLimit, 1, maxAlertsLimit); err != nil {
		return f, err
	}
	return f, nil
}

// handleListAlerts lists the alerts of a filter, newest first.
func (s *Server) handleListAlerts(w http.ResponseWriter, r *http.Request) {
	if !s.alertsEnabled(w) {
		return
	}
	f, err := parseAlertFilter(r, s.now())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	alerts, err := s.deps.Alerts.ListAlerts(ctx, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if alerts == nil {
		alerts = []store.Alert{}
	}
	writeJSON(w, http.StatusOK, alerts)
}

// alertID reads the {id} of an alert route.
func alertID(r *http.Request) (int64, error) {
	v := mux.Vars(r)["id"]
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, badf("id: %q is not an alert id", v)
	}
	return id, nil
}

// handleGetAlert returns one alert with its mitigation and notification
// logs.
func (s *Server) handleGetAlert(w http.ResponseWriter, r *http.Request) {
	if !s.alertsEnabled(w) {
		return
	}
	id, err := alertID(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	a, err := s.deps.Alerts.GetAlert(ctx, id)
	if err != nil {
		s.alertErr(w, r, err)
		return
	}
	d := AlertDetail{Alert: a}
	if d.Mitigation, err = s.deps.Alerts.MitigationActions(ctx, id, alertLogLimit); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if d.Notifications, err = s.deps.Alerts.NotificationAttempts(ctx, id, alertLogLimit); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if d.Mitigation == nil {
		d.Mitigation = []store.MitigationAction{}
	}
	if d.Notifications == nil {
		d.Notifications = []store.NotificationAttempt{}
	}
	writeJSON(w, http.StatusOK, d)
}

// alertErr is writeErr with the answer to an unknown alert spelled out.
func (s *Server) alertErr(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such alert")
		return
	}
	s.writeErr(w, r, err)
}

// handleAckAlert acknowledges an alert as the caller (the session's user,
// or "token:<name>") and returns it. An acknowledged alert keeps its first
// acknowledgement.
func (s *Server) handleAckAlert(w http.ResponseWriter, r *http.Request) {
	if !s.alertsEnabled(w) {
		return
	}
	id, err := alertID(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	a, err := s.deps.Alerts.GetAlert(ctx, id)
	if err != nil {
		s.alertErr(w, r, err)
		return
	}
	if a.AckedBy == "" {
		by := userOf(r)
		if err := s.deps.Alerts.AckAlert(ctx, id, by, s.now()); err != nil {
			s.alertErr(w, r, err)
			return
		}
		s.log.Info("alert acknowledged", "alert", id, "kind", a.Kind, "target", a.Target, "by", by)
		if a, err = s.deps.Alerts.GetAlert(ctx, id); err != nil {
			s.alertErr(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, a)
}

// handleAlertStatus returns the live state of detection, notification and
// mitigation.
func (s *Server) handleAlertStatus(w http.ResponseWriter, r *http.Request) {
	if !s.alertStatusEnabled(w) {
		return
	}
	v := AlertStatusView{
		Detector:      s.deps.AlertStatus.DetectorStatus(),
		Notifications: s.deps.AlertStatus.NotificationChannels(),
		Mitigation:    s.deps.AlertStatus.MitigationStatus(),
	}
	if v.Notifications == nil {
		v.Notifications = []store.NotificationChannelStatus{}
	}
	if v.Mitigation == nil {
		v.Mitigation = []store.MitigationStatus{}
	}
	writeJSON(w, http.StatusOK, v)
}

// handleTestNotification sends a test message to one notification channel
// and waits for its delivery: 200 {"ok": true}, or 502 with the delivery
// error.
func (s *Server) handleTestNotification(w http.ResponseWriter, r *http.Request) {
	if !s.alertStatusEnabled(w) {
		return
	}
	var req TestNotificationRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	req.Channel = strings.TrimSpace(req.Channel)
	if req.Channel == "" {
		s.writeErr(w, r, badf("channel: required"))
		return
	}
	if len(req.Channel) > maxAlertParam {
		s.writeErr(w, r, badf("channel: longer than %d characters", maxAlertParam))
		return
	}
	var names []string
	for _, c := range s.deps.AlertStatus.NotificationChannels() {
		names = append(names, c.Name)
	}
	if !slices.Contains(names, req.Channel) {
		if len(names) == 0 {
			s.writeErr(w, r, badf("channel: no notification channel is configured"))
			return
		}
		s.writeErr(w, r, badf("channel: no notification channel named %q (configured: %s)", req.Channel, strings.Join(names, ", ")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), testNotificationTimeout)
	defer cancel()
	if err := s.deps.AlertStatus.SendTestNotification(ctx, req.Channel); err != nil {
		s.log.Warn("test notification failed", "channel", req.Channel, "by", userOf(r), "err", err)
		writeError(w, http.StatusBadGateway, "cannot deliver to "+req.Channel+": "+firstLine(err.Error()))
		return
	}
	s.log.Info("test notification sent", "channel", req.Channel, "by", userOf(r))
	writeJSON(w, http.StatusOK, TestNotificationResult{OK: true})
}
