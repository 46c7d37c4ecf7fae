package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/flowbox/flowbox/store"
)

// openAPI is a JSON object of the OpenAPI document.
type openAPI = map[string]any

// filterParams are the query parameters of every flow query.
func filterParams() []any {
	p := func(name, typ, desc string) any {
		return openAPI{"name": name, "in": "query", "required": false, "description": desc, "schema": openAPI{"type": typ}}
	}
	return []any{
		p("range", "string", "preset range: 1h, 6h, 24h (default), 7d, 30d"),
		p("from", "string", "start, RFC 3339 or unix seconds (instead of range)"),
		p("to", "string", "end, RFC 3339 or unix seconds (default now)"),
		p("router", "integer", "router id"),
		p("host", "string", "addresses or CIDRs on either side, comma-separated or repeated (ORed; raw window only)"),
		p("local", "string", "addresses or CIDRs on the subscriber side (raw window only); with remote, a conversation"),
		p("remote", "string", "addresses or CIDRs on the remote side (raw window only)"),
		p("app", "string", "application label, as the port top names it (raw window only)"),
		p("subscriber", "string", "subscriber name, exactly as the Subscribers page and the local-host top name it, at most 200 characters (raw window only)"),
		p("country", "string", "country of the remote side, ISO code or label (private, bogon...), unknown for none (raw window only)"),
		p("domain", "string", "registrable domain of the remote side (googlevideo.com), as the domain top names it, unknown for none (raw window only)"),
		p("port", "integer", "source or destination port (raw window only)"),
		p("proto", "string", "IP protocol name (tcp, udp, icmp...) or number (raw window only)"),
		p("as", "integer", "source or destination AS number (raw window only)"),
		p("iface", "integer", "input or output interface index (raw window only, except for per-interface traffic and the interface top)"),
	}
}

func idParam() any {
	return openAPI{"name": "id", "in": "path", "required": true, "schema": openAPI{"type": "integer", "minimum": 1}}
}

func nameParam() any {
	return openAPI{"name": "name", "in": "path", "required": true, "schema": openAPI{"type": "string"}}
}

func ref(name string) openAPI { return openAPI{"$ref": "#/components/schemas/" + name} }

func arrayOf(name string) openAPI { return openAPI{"type": "array", "items": ref(name)} }

// op describes one operation with its success answer and the error
// answers it can give.
func op(summary string, code string, schema openAPI, params []any, body openAPI, errs ...string) openAPI {
	resp := openAPI{}
	if schema == nil {
		resp[code] = openAPI{"description": "done"}
	} else {
		resp[code] = openAPI{"description": "ok", "content": openAPI{"application/json": openAPI{"schema": schema}}}
	}
	errs = append(errs, "401")
	for _, e := range errs {
		resp[e] = openAPI{"$ref": "#/components/responses/Error"}
	}
	o := openAPI{"summary": summary, "responses": resp}
	if params != nil {
		o["parameters"] = params
	}
	if body != nil {
		o["requestBody"] = openAPI{"required": true, "content": openAPI{"application/json": openAPI{"schema": body}}}
	}
	return o
}

func obj(props openAPI, required ...string) openAPI {
	o := openAPI{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// buildOpenAPI returns the OpenAPI 3 document of the JSON API.
func buildOpenAPI() openAPI {
	str := openAPI{"type": "string"}
	num := openAPI{"type": "number"}
	integ := openAPI{"type": "integer"}
	boo := openAPI{"type": "boolean"}
	role := openAPI{"type": "string", "enum": []string{"viewer", "operator", "admin"}}
	ts := openAPI{"type": "string", "format": "date-time"}
	withID := []any{idParam()}
	quick := openAPI{"name": "quick", "in": "query", "schema": boo,
		"description": "bound a raw scan (a filter the rollups cannot answer) to 2 s instead of 10 s: the newest part of the range, marked partial, for a first answer"}
	top := append([]any{openAPI{"name": "dimension", "in": "path", "required": true,
		"schema": openAPI{"type": "string", "enum": ValidDimensions()}},
		openAPI{"name": "limit", "in": "query", "schema": openAPI{"type": "integer", "minimum": 1, "maximum": 100}}, quick}, filterParams()...)
	traffic := append([]any{
		openAPI{"name": "step", "in": "query", "schema": openAPI{"type": "string"}, "description": "bucket size (Go duration, at least 1m)"},
		openAPI{"name": "interfaces", "in": "query", "schema": boo, "description": "per-interface series (needs router)"},
	}, filterParams()...)
	paging := append([]any{
		openAPI{"name": "limit", "in": "query", "schema": openAPI{"type": "integer", "minimum": 1, "maximum": 1000}},
		openAPI{"name": "cursor", "in": "query", "schema": str, "description": "next of the previous page"},
	}, filterParams()...)
	qp := func(name string, schema openAPI, desc string) any {
		return openAPI{"name": name, "in": "query", "required": false, "description": desc, "schema": schema}
	}
	usageCommon := []any{
		qp("range", str, "preset range: 1h, 6h, 24h (default), 7d, 30d"),
		qp("from", str, "start, RFC 3339 or unix seconds (instead of range); widened to the hour, or to the UTC day beyond the hourly retention"),
		qp("to", str, "end, RFC 3339 or unix seconds (default now); widened like from"),
		qp("router", str, "router ids, comma-separated or repeated (a negative -N is the unknown exporter N); default every router"),
	}
	usageList := append([]any{
		qp("search", str, "keep the subscribers whose name contains this, ignoring case"),
		qp("sort", openAPI{"type": "string", "enum": []string{store.UsageByTotal, store.UsageByDownload, store.UsageByUpload, store.UsageByName}}, "order: largest total (default), download or upload first, or by name"),
	}, usageCommon...)
	usagePage := append([]any{
		qp("limit", openAPI{"type": "integer", "minimum": 1, "maximum": usagePageMax}, "rows per page (default 100)"),
		qp("offset", openAPI{"type": "integer", "minimum": 0}, "rows to skip"),
	}, usageList...)
	usageSeries := append([]any{
		openAPI{"name": "subscriber", "in": "query", "required": true, "description": "the subscriber's exact name", "schema": str},
		qp("step", openAPI{"type": "string", "enum": []string{"1h", "1d"}}, "per hour or per UTC day; default hours up to 7 days within the hourly retention"),
	}, usageCommon...)
	usageCSV := op("Export the usage of every matching subscriber as CSV (streamed, at most 1,000,000 rows)", "200", nil, usageList, nil, "400", "503")
	usageCSV["responses"].(openAPI)["200"] = openAPI{"description": "CSV", "content": openAPI{"text/csv": openAPI{"schema": str}}}
	removeParams := []any{idParam(), openAPI{"name": "undo", "in": "query", "schema": boo, "description": "undo flowbox's settings on the router first"}}
	csvOp := op("Export every matching flow as CSV (streamed)", "200", nil, filterParams(), nil, "400", "503")
	alertList := []any{
		qp("active", boo, "only the alerts that have not resolved (1)"),
		qp("all", boo, "every stored alert, without the since bound (1)"),
		qp("kind", openAPI{"type": "string", "enum": store.AlertKinds}, "one kind"),
		qp("router", str, "the router's name, exactly"),
		qp("target", str, "the target, exactly (an address, or a router or router/interface for the health kinds)"),
		qp("since", str, "the alerts active at or after this: RFC 3339, or a duration before now such as 24h or 7d (default 7d)"),
		qp("limit", openAPI{"type": "integer", "minimum": 1, "maximum": maxAlertsLimit}, "at most this many, newest first (default 500)"),
	}
	csvOp["responses"].(openAPI)["200"] = openAPI{"description": "CSV", "content": openAPI{"text/csv": openAPI{"schema": str}}}
	atParams := []any{
		openAPI{"name": "at", "in": "query", "required": true, "schema": str, "description": "the time: RFC 3339 with any offset " +
			"(2026-03-03T14:02:11Z, 2026-03-03T11:02:11-03:00), a few other forms with an offset or UTC (2026-03-03 14:02:11 UTC, " +
			"03/Mar/2026:11:02:11 -0300), unix seconds, or a local time (2026-03-03T11:02:11) with tz"},
		qp("tz", str, "the IANA time zone of a local at (America/Sao_Paulo, or UTC); a time with its own offset ignores it. "+
			"A local time that the zone skipped or saw twice is refused"),
	}
	natParams := append([]any{
		openAPI{"name": "address", "in": "query", "required": true, "schema": str, "description": "the public (post-NAT) address of the complaint"},
		qp("port", openAPI{"type": "integer", "minimum": 1, "maximum": 65535}, "the public port (default any)"),
		qp("proto", str, "tcp, udp or a protocol number 1-255 (default any)"),
		qp("window", str, "the tolerance on each side of at, a Go duration from 1s to 1h (default 2m): clocks and NAT timeouts differ"),
	}, atParams...)
	natCSV := op("The abuse lookup as CSV for the reply to the abuse desk: # comment lines stating the query and the answer, "+
		"then one row per match (times in UTC RFC 3339)", "200", nil, natParams, nil, "400", "503")
	natCSV["responses"].(openAPI)["200"] = openAPI{"description": "CSV", "content": openAPI{"text/csv": openAPI{"schema": str}}}
	reportParams := []any{
		qp("period", str, "a calendar month (2026-11), a day (2026-11-05), or FROM..TO where each end is a month or a day, both included "+
			"(2026-01..2026-12, 2026-11-15..2026-12-14), in tz; at most 400 days; default the previous calendar month"),
		qp("tz", str, "the IANA time zone of the period's calendar (Europe/Berlin); default UTC"),
		qp("by", openAPI{"type": "string", "enum": reportKinds}, "a row per subscriber and router (default), router, router interface, or one for the fleet"),
		qp("percentile", openAPI{"type": "number", "exclusiveMinimum": 0, "maximum": 100}, "the percentile of the 5-minute rates (default 95)"),
		qp("split", openAPI{"type": "string", "enum": []string{"month", "none"}}, "a row per calendar month, or one over the period; default month when the period spans months"),
		qp("router", str, "only this router (its name or id)"),
		qp("search", str, "only the subscribers (or interfaces) whose name contains this, ignoring case"),
		qp("top_apps", openAPI{"type": "integer", "minimum": 0, "maximum": maxReportTopApps}, "applications listed per row (default 3)"),
		qp("format", openAPI{"type": "string", "enum": []string{"json", "csv"}}, "json (default) or csv (a download, flowbox-report-<by>-<period>.csv)"),
		qp("download", boo, "1: the JSON as a download (flowbox-report-<by>-<period>.json)"),
	}
	reportOp := op("A traffic report for billing and planning: per subscriber (with the customer id), router, interface or the fleet, "+
		"download, upload, total, the peak 5-minute rates and when, a percentile of the 5-minute rates per direction and the billable "+
		"(larger) one, and the top applications (503 without a report builder)", "200", ref("Report"), reportParams, nil, "400", "503", "504")
	reportOp["responses"].(openAPI)["200"].(openAPI)["content"].(openAPI)["text/csv"] = openAPI{"schema": str}
	holderParams := append([]any{openAPI{"name": "address", "in": "query", "required": true, "schema": str,
		"description": "an inside address, or a public address without NAT"}}, atParams...)

	return openAPI{
		"openapi": "3.0.3",
		"info": openAPI{
			"title":       "flowbox API",
			"version":     "1",
			"description": "Fleet status, onboarding, traffic and flow search, alerts, abuse lookup (CGNAT). Authenticate with a session cookie or `Authorization: Bearer fbx_...` (create tokens with `flowbox token create`). Errors are {\"error\": \"message\"}; 503 (with Retry-After) means too many queries are waiting, try again.",
		},
		"servers":  []any{openAPI{"url": "/api/v1"}},
		"security": []any{openAPI{"bearer": []any{}}, openAPI{"session": []any{}}},
		"paths": openAPI{
			"/openapi.json": openAPI{"get": op("This document", "200", openAPI{"type": "object"}, nil, nil)},
			"/me":           openAPI{"get": op("Who is calling", "200", ref("Me"), nil, nil)},
			"/routers": openAPI{
				"get":  op("The fleet: every router with status, rates and counters", "200", arrayOf("Router"), nil, nil, "503"),
				"post": op("Add a router: connect, detect and plan", "201", ref("AddResult"), nil, ref("RouterSpec"), "400", "409", "502"),
			},
			"/routers/{id}": openAPI{
				"get":    op("One router", "200", ref("Router"), withID, nil, "400", "404", "503"),
				"delete": op("Remove a router from the inventory", "204", nil, removeParams, nil, "400", "404", "502"),
			},
			"/routers/{id}/plan":        openAPI{"get": op("What provisioning would change (dry run)", "200", ref("Plan"), withID, nil, "400", "404", "502")},
			"/routers/{id}/apply":       openAPI{"post": op("Apply the plan", "200", ref("Run"), withID, nil, "400", "404", "502")},
			"/routers/{id}/verify":      openAPI{"post": op("Verify settings and flows", "200", ref("Run"), withID, nil, "400", "404", "502")},
			"/routers/{id}/undo":        openAPI{"post": op("Remove flowbox's settings from the router", "200", ref("Run"), withID, nil, "400", "404", "502")},
			"/routers/{id}/certificate": openAPI{"get": op("The router's pinned API-SSL certificate fingerprint and the one it presents now (no login)", "200", ref("Certificate"), withID, nil, "400", "404", "501", "502")},
			"/routers/{id}/repin":       openAPI{"post": op("Pin the certificate the router presents now, whose fingerprint the operator confirmed", "200", ref("Router"), withID, ref("RepinRequest"), "400", "404", "501", "502")},
			"/routers/{id}/history":     openAPI{"get": op("Provisioning history, newest first", "200", arrayOf("Run"), append(withID, openAPI{"name": "limit", "in": "query", "schema": integ}), nil, "400", "404")},
			"/exporters":                openAPI{"get": op("Counters of every exporter, trusted or not (cumulative across restarts)", "200", arrayOf("Exporter"), nil, nil)},
			"/exporters/allowed": openAPI{
				"get":  op("Trusted exporter prefixes besides the onboarded routers: configured and accepted", "200", arrayOf("AllowedPrefix"), nil, nil),
				"post": op("Accept an unknown exporter (address or CIDR prefix): its flows are stored from now on", "201", ref("AllowedPrefix"), nil, ref("AllowRequest"), "400", "501"),
				"delete": op("Remove an accepted prefix", "204", nil, []any{openAPI{"name": "prefix", "in": "query", "required": true, "schema": str,
					"description": "the accepted prefix, e.g. 192.0.2.7/32"}}, nil, "400", "404", "501"),
			},
			"/status":          openAPI{"get": op("The store writer's health and the unknown exporters", "200", ref("Status"), nil, nil)},
			"/traffic":         openAPI{"get": op("Traffic over time in bits/s", "200", ref("Series"), append(slices.Clone(traffic), quick), nil, "400", "503")},
			"/top/{dimension}": openAPI{"get": op("Top entries of a dimension by bytes", "200", ref("Top"), top, nil, "400", "503")},
			"/fleet/traffic": openAPI{"get": op("The whole fleet's traffic over time, one line per router (largest first), with each router's volumes "+
				"and average rates over the time with data (the dashboard's stacked chart and routers by traffic)", "200", ref("FleetSeries"), traffic, nil, "400", "503")},
			"/flows":     openAPI{"get": op("Search raw flows, newest first, one page", "200", ref("FlowPage"), paging, nil, "400", "503")},
			"/flows.csv": openAPI{"get": csvOp},
			"/subscribers/usage": openAPI{"get": op("Traffic of each subscriber per router over a period (every subscriber, sorted and paged)",
				"200", ref("Usage"), usagePage, nil, "400", "503")},
			"/subscribers/usage.csv":    openAPI{"get": usageCSV},
			"/subscribers/usage/series": openAPI{"get": op("One subscriber's bytes per hour or per day", "200", ref("UsageSeries"), usageSeries, nil, "400", "503")},
			"/settings":                 openAPI{"get": op("Collector ports and retention", "200", ref("Settings"), nil, nil)},
			"/alerts":                   openAPI{"get": op("Alerts, newest first (503 when alerts are disabled)", "200", arrayOf("Alert"), alertList, nil, "400", "503")},
			"/alerts/status":            openAPI{"get": op("The state of detection, notification channels and mitigation", "200", ref("AlertStatus"), nil, nil, "503")},
			"/alerts/{id}": openAPI{"get": op("One alert with its mitigation audit log and notification attempts, newest first", "200", ref("AlertDetail"),
				withID, nil, "400", "404", "503")},
			"/alerts/{id}/ack": openAPI{"post": op("Acknowledge an alert as the caller (an acknowledged alert keeps its first acknowledgement)", "200",
				ref("Alert"), withID, nil, "400", "404", "503")},
			"/notifications/test": openAPI{"post": op("Send a test message to a notification channel and wait for its delivery (502: the delivery failed, with why)",
				"200", ref("TestNotificationResult"), nil, ref("TestNotificationRequest"), "400", "502", "503")},
			"/reports": openAPI{"get": reportOp},
			"/reports/runs": openAPI{"get": op("The runs of the scheduled reports, newest first, with each delivery's outcome "+
				"(configured false, with a message, when no report is scheduled)", "200", ref("ReportRuns"),
				[]any{qp("limit", openAPI{"type": "integer", "minimum": 1, "maximum": maxReportRuns}, "at most this many (default 50)")}, nil, "400")},
			"/subscribers/at": openAPI{"get": op("Who had this address at a time, from the subscriber history (found=false with the message when nobody had it; 503 without the NAT store)",
				"200", ref("AddressHolder"), holderParams, nil, "400", "503")},
			"/nat/lookup": openAPI{"get": op("Abuse lookup: which inside address, port and subscriber used a public address (and port) around a time, "+
				"with the raw flows still kept; no match is 200 with empty matches and the message (503 without the NAT store)",
				"200", ref("NATLookup"), natParams, nil, "400", "503")},
			"/nat/lookup.csv": openAPI{"get": natCSV},
			"/coverage": openAPI{"get": op("Coverage: per router and interface, flow bytes over the interface counters per direction (percent), "+
				"with the likely cause below the threshold (503 without the counter poller)", "200", ref("Coverage"), []any{
				qp("router", integ, "one router's id (default every router)"),
				qp("since", str, "the span compared, a duration such as 1h or 24h (default coverage.window); the newest coverage.lag minutes are left out"),
			}, nil, "400", "503")},
			"/coverage/counters": openAPI{"get": op("A router's interface counters in bits per second per minute (per hour beyond the minute retention), "+
				"rx and tx summed over its interfaces: the traffic chart's counter line", "200", ref("CounterLine"), []any{
				qp("router", integ, "the router's id (required)"),
				qp("since", str, "the span, a duration such as 1h (default coverage.window)"),
			}, nil, "400", "503")},
			"/subscribers/domains": openAPI{"get": op("One subscriber's top remote domains over a period (whole UTC days; the 20 largest per day are kept once a day is over, the rest is in other)",
				"200", ref("SubscriberDomains"), append([]any{qp("subscriber", str, "the subscriber's name, exactly (required)"),
					qp("limit", integ, "rows, 1-100 (default 10)")}, usageCommon...), nil, "400")},
			"/domains/status": openAPI{"get": op("Per router, how its DNS cache is read (last poll, names, failures) and whether it is its customers' resolver, "+
				"with what that means for the domains shown", "200", openAPI{"type": "object"}, nil, nil, "503")},
			"/users": openAPI{
				"get":  op("Console users and their roles (admin)", "200", arrayOf("User"), nil, nil),
				"post": op("Add a console user (admin); the role defaults to viewer", "201", ref("User"), nil, ref("UserRequest"), "400", "409"),
			},
			"/users/{name}": openAPI{"delete": op("Delete a user (admin; not the last admin) with its sessions and API tokens", "204", nil, []any{nameParam()}, nil, "404", "409")},
			"/users/{name}/password": openAPI{"put": op("Change a password: one's own with current_password (other sessions end, tokens stay), "+
				"or another user's as an admin (all of that user's sessions end and API tokens are revoked)", "204", nil, []any{nameParam()}, ref("UserRequest"), "400", "404")},
			"/users/{name}/role": openAPI{"put": op("Change a user's role (admin; never leaving no admin); the user's tokens do at most what the new role allows",
				"200", ref("User"), []any{nameParam()}, obj(openAPI{"role": role}, "role"), "400", "404", "409")},
			"/tokens": openAPI{
				"get": op("API tokens without their secrets: an admin sees everybody's, anyone else their own", "200", arrayOf("Token"), nil, nil),
				"post": op("Create an API token (the secret is returned once) owned by the caller, or by user for an admin; its role is at most the owner's and the caller's (default: that); "+
					"it may expire (expires_in such as 720h or 30d, or expires_at, RFC 3339)", "201", ref("Token"), nil,
					obj(openAPI{"name": str, "user": str, "role": role, "expires_in": str, "expires_at": ts}, "name"), "400", "409"),
			},
			"/tokens/{id}": openAPI{"delete": op("Revoke an API token (one's own; an admin's: anybody's)", "204", nil, withID, nil, "400", "404")},
			"/audit": openAPI{"get": op("The audit log, newest first (admin): who changed what, when and from where; kept max_age, at most max_rows entries", "200", ref("AuditPage"),
				[]any{
					openAPI{"name": "limit", "in": "query", "schema": openAPI{"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
					openAPI{"name": "before", "in": "query", "description": "the next of the previous page", "schema": integ},
				}, nil, "400")},
		},
		"components": openAPI{
			"securitySchemes": openAPI{
				"bearer":  openAPI{"type": "http", "scheme": "bearer"},
				"session": openAPI{"type": "apiKey", "in": "cookie", "name": sessionCookie},
			},
			"responses": openAPI{"Error": openAPI{"description": "error", "content": openAPI{"application/json": openAPI{"schema": ref("Error")}}}},
			"schemas": openAPI{
				"Error":      obj(openAPI{"error": str}, "error"),
				"Me":         obj(openAPI{"user": str, "token": boo, "owner": str, "role": role}),
				"AuditEntry": obj(openAPI{"id": integ, "at": ts, "actor": str, "action": str, "target": str, "detail": str, "client": str, "ok": boo}),
				"AuditPage": obj(openAPI{"entries": arrayOf("AuditEntry"), "next": openAPI{"type": "integer", "description": "before= of the next page, 0 at the end"},
					"max_age": str, "max_rows": integ}),
				"RouterSpec": obj(openAPI{"name": str, "address": openAPI{"type": "string", "description": "host or host:port of the RouterOS API"},
					"username": str, "password": openAPI{"type": "string", "writeOnly": true}, "tls": openAPI{"type": "boolean", "description": "API-SSL (8729), the certificate pinned on first use"},
					"create_user": openAPI{"type": "boolean", "description": "create a least-privilege flowbox user on the router and store it instead of the login"}}, "address", "username"),
				"Certificate":  obj(openAPI{"pinned": str, "presented": str, "changed": boo}, "pinned", "presented", "changed"),
				"RepinRequest": obj(openAPI{"fingerprint": openAPI{"type": "string", "description": "SHA-256 of the certificate, 64 hex digits (colons allowed)"}}, "fingerprint"),
				"Change":       obj(openAPI{"path": str, "old": str, "new": str, "skip": boo}),
				"Plan":         obj(openAPI{"summary": str, "changes": arrayOf("Change")}),
				"AddResult":    obj(openAPI{"router": ref("Router"), "plan": ref("Plan")}),
				"Interface":    obj(openAPI{"index": integ, "name": str, "type": str, "comment": str}),
				"Exporter": obj(openAPI{"exporter": str, "router_id": integ, "packets": integ, "flows_received": integ, "flows_stored": integ,
					"flows_dropped": openAPI{"type": "object", "additionalProperties": integ}, "decode_errors": openAPI{"type": "object", "additionalProperties": integ},
					"lost_flows": integ, "templates": integ, "pending_no_template": integ, "first_seen": ts, "last_seen": ts, "last_template": ts,
					"trusted":          openAPI{"type": "boolean", "description": "false: not an onboarded router nor allowed; its flows are counted, not stored"},
					"sets_no_template": openAPI{"type": "integer", "description": "data sets dropped while waiting for their template (sets, not flows)"}}),
				"AllowedPrefix": obj(openAPI{"prefix": str, "source": openAPI{"type": "string", "enum": []string{"config", "console"}},
					"added_by": str, "added_at": ts}),
				"AllowRequest": obj(openAPI{"prefix": openAPI{"type": "string", "description": "an exporter address or CIDR prefix"}}),
				"StoreHealth": obj(openAPI{"ok": boo, "error": str, "since": ts, "dropped_flows": integ, "dropped_batches": integ,
					"queue_length": integ, "queue_capacity": integ,
					"nat_mappings_dropped": openAPI{"type": "integer", "description": "NAT mappings that could not be written (the abuse lookup misses them)"},
					"nat_evicted":          openAPI{"type": "integer", "description": "NAT mappings written early because store.nat-cache was full"},
					"pack_errors":          openAPI{"type": "integer", "description": "failed attempts to pack closed raw partitions into blocks"},
					"pack_error":           openAPI{"type": "string", "description": "the last packing error, while packing fails (the rows stay readable, larger and slower to scan)"},
					"rollup_errors":        openAPI{"type": "integer", "description": "failed rounds of the rollups made from raw flows (ClickHouse's top-N lists)"},
					"rollup_error":         openAPI{"type": "string", "description": "the last rollup error, while rollups fail"}}),
				"Status": obj(openAPI{"store": ref("StoreHealth"), "unknown_exporters": arrayOf("Exporter")}),
				"Router": obj(openAPI{"id": integ, "name": str, "address": str, "tls": boo, "username": str, "identity": str, "board": str,
					"model": str, "serial": str, "version": str,
					"status": openAPI{"type": "string", "enum": []string{StatusOnline, StatusStale, StatusNeverSeen, StatusError}},
					"state":  str, "state_detail": str, "last_contact": ts, "last_flow": ts, "flows_per_sec": num,
					"bits_in_per_sec": num, "bits_out_per_sec": num, "lost_flows": integ, "template_state": str, "templates": integ,
					"exporters": arrayOf("Exporter"), "interfaces": arrayOf("Interface"), "tls_fingerprint": str}),
				"Run": obj(openAPI{"id": integ, "router_id": integ, "time": ts, "action": str, "ok": boo, "summary": str,
					"changes": openAPI{"type": "array", "items": str}, "transcript": openAPI{"type": "array", "items": str}, "error": str}),
				"IfSeries":     obj(openAPI{"index": integ, "name": str, "bits_in": openAPI{"type": "array", "items": num}, "bits_out": openAPI{"type": "array", "items": num}}),
				"FleetVolumes": obj(openAPI{"bytes_in": integ, "bytes_out": integ, "avg_bits_in": num, "avg_bits_out": num}),
				"RouterLine": obj(openAPI{"id": integ, "name": str, "bits_in": openAPI{"type": "array", "items": num}, "bits_out": openAPI{"type": "array", "items": num},
					"bytes_in": integ, "bytes_out": integ, "avg_bits_in": num, "avg_bits_out": num}),
				"FleetSeries": obj(openAPI{"step": integ, "resolution": str, "now": integ,
					"since": openAPI{"type": "integer", "description": "set (unix seconds) when every router is newer than the range: the series starts at the first minute with traffic"},
					"times": openAPI{"type": "array", "items": integ}, "routers": arrayOf("RouterLine"), "totals": ref("FleetVolumes"),
					"seconds": openAPI{"type": "number", "description": "the time with data within the range: average rates are bytes * 8 / seconds"}}),
				"Series": obj(openAPI{"step": integ, "resolution": str, "now": integ,
					"since":   openAPI{"type": "integer", "description": "set (unix seconds) when the router (or fleet) is newer than the range: the series starts at its first minute with traffic"},
					"times":   openAPI{"type": "array", "items": integ},
					"bits_in": openAPI{"type": "array", "items": num}, "bits_out": openAPI{"type": "array", "items": num}, "interfaces": arrayOf("IfSeries"),
					"partial":      openAPI{"type": "boolean", "description": "a raw scan ran out of time: only the flows since scanned_from were read (the buckets before are empty)"},
					"scanned_from": openAPI{"type": "string", "format": "date-time"}, "note": openAPI{"type": "string", "description": "the partial answer in a sentence"}}),
				"TopRow": obj(openAPI{"key": openAPI{"type": "string", "description": "filter value of a click (host, as, app or proto/port, country, local|remote, iface, proto by dimension); empty when not filterable"},
					"label": str, "name": str, "router": openAPI{"type": "boolean", "description": "name is a router's: the host is one of its own addresses"},
					"reverse": openAPI{"type": "boolean", "description": "name (of a remote host) came from reverse DNS, not from a router's DNS cache: not a name a customer visited"},
					"bytes":   integ, "packets": integ, "flows": integ}),
				"Top": obj(openAPI{"dimension": str, "seconds": openAPI{"type": "number", "description": "the time with data within the range (from the first minute of traffic when the router, or the fleet, is newer than the range; else the whole range): rates are bytes * 8 / seconds"}, "resolution": str, "rows": arrayOf("TopRow"), "other": ref("TopRow"), "total": ref("TopRow"),
					"partial":      openAPI{"type": "boolean", "description": "a raw scan ran out of time: only the flows since scanned_from were read (the newest part of the range)"},
					"scanned_from": ts, "note": openAPI{"type": "string", "description": "the partial answer in a sentence"}}),
				"Flow": obj(openAPI{"start": ts, "end": ts, "router_id": integ, "exporter": str, "src": str, "dst": str, "src_port": integ,
					"dst_port": integ, "proto": str, "bytes": integ, "packets": integ, "in_if": integ, "out_if": integ, "src_as": integ,
					"dst_as": integ, "src_as_name": str, "dst_as_name": str,
					"direction": openAPI{"type": "string", "enum": []string{"download", "upload", "internal", "transit", "router-out", "router-in", "unknown"},
						"description": "seen from the subscribers; router-out and router-in are a router's own traffic (subscriber is then the router's name)"},
					"subscriber": str, "application": str,
					"src_country": str, "dst_country": str,
					"domain":              openAPI{"type": "string", "description": "registrable domain of the remote side, from the routers' DNS caches at the flow's time"},
					"remote_name":         openAPI{"type": "string", "description": "full name of the remote address at the flow's start"},
					"remote_name_reverse": openAPI{"type": "boolean", "description": "remote_name came from reverse DNS, not from a router's DNS cache"},
					"post_nat_dst":        openAPI{"type": "string", "description": "the destination after the router's NAT (a download's inside address; dst is then the public one)"},
					"post_nat_dst_port":   integ}),
				"DomainUsage": obj(openAPI{"domain": openAPI{"type": "string", "description": "registrable domain; empty for traffic whose remote side had no known name"},
					"download_bytes": integ, "upload_bytes": integ, "flows": integ}),
				"SubscriberDomains": obj(openAPI{"from": ts, "to": ts, "rows": arrayOf("DomainUsage"), "other": ref("DomainUsage"), "total": ref("DomainUsage")}),
				"UsageTotal":        obj(openAPI{"download_bytes": integ, "upload_bytes": integ, "download_packets": integ, "upload_packets": integ, "flows": integ}),
				"UsageRow": obj(openAPI{"router_id": integ, "router": str, "subscriber": str, "download_bytes": integ, "upload_bytes": integ,
					"download_packets": integ, "upload_packets": integ, "flows": integ, "last_seen": ts}),
				"Usage": obj(openAPI{"from": ts, "to": ts, "resolution": str, "count": integ, "total": ref("UsageTotal"), "rows": arrayOf("UsageRow")}),
				"UsageSeries": obj(openAPI{"subscriber": str, "resolution": str, "step": integ, "times": openAPI{"type": "array", "items": integ},
					"download_bytes": openAPI{"type": "array", "items": integ}, "upload_bytes": openAPI{"type": "array", "items": integ}}),
				"FlowPage": obj(openAPI{"flows": arrayOf("Flow"), "next": str}),
				"Settings": obj(openAPI{"collector_listen": openAPI{"type": "array", "items": str}, "flow_store": str, "raw_retention": str, "minute_retention": str, "hour_retention": str}),
				"User":     obj(openAPI{"name": str, "role": role, "created_at": ts}),
				"UserRequest": obj(openAPI{"name": str, "password": openAPI{"type": "string", "writeOnly": true, "minLength": MinPasswordLength},
					"current_password": openAPI{"type": "string", "writeOnly": true, "description": "required to change one's own password"}, "role": role}, "password"),
				"InterfaceCoverage": obj(openAPI{"router_id": integ, "router": str, "if_index": integ, "interface": str,
					"flow_bytes_in": integ, "counter_bytes_in": integ, "flow_bytes_out": integ, "counter_bytes_out": integ,
					"flow_packets_in": integ, "counter_packets_in": integ, "flow_packets_out": integ, "counter_packets_out": integ,
					"coverage_in":  openAPI{"type": "number", "nullable": true, "description": "percent; null when the counters saw too little traffic"},
					"coverage_out": openAPI{"type": "number", "nullable": true, "description": "percent; null when the counters saw too little traffic"},
					"low":          boo, "diagnosis": openAPI{"type": "string", "description": "the likely cause, what to change and its cost; or why the interface is not judged"},
					"minutes": integ}),
				"RouterCoverage": obj(openAPI{"router_id": integ, "router": str,
					"health":      openAPI{"type": "string", "enum": []string{store.CoverageOK, store.CoverageLow, store.CoverageUnknown}},
					"coverage_in": openAPI{"type": "number", "nullable": true}, "coverage_out": openAPI{"type": "number", "nullable": true},
					"causes": openAPI{"type": "array", "items": str}, "polls": integ, "failures": integ, "last_poll": ts, "last_error": str,
					"counter_resets": integ, "counter_wraps": integ, "reboots": integ}),
				"Coverage": obj(openAPI{"from": ts, "to": ts, "resolution": openAPI{"type": "string", "enum": []string{"minute", "hour"}},
					"threshold": num, "routers": arrayOf("RouterCoverage"), "interfaces": arrayOf("InterfaceCoverage")}),
				"CounterLine": obj(openAPI{"times": openAPI{"type": "array", "items": integ}, "rx_bps": openAPI{"type": "array", "items": num},
					"tx_bps": openAPI{"type": "array", "items": num}, "step": integ}),
				"AlertTop": obj(openAPI{"key": openAPI{"type": "string", "description": "an address, or proto/port"}, "bytes": integ, "packets": integ, "flows": integ}),
				"AlertEvidence": obj(openAPI{"top_sources": arrayOf("AlertTop"), "top_ports": arrayOf("AlertTop"),
					"measures": openAPI{"type": "object", "additionalProperties": num, "description": "the detector's numbers at the peak, by name"}}),
				"Alert": obj(openAPI{"id": integ, "kind": openAPI{"type": "string", "enum": store.AlertKinds},
					"severity":  openAPI{"type": "string", "enum": []string{store.SeverityCritical, store.SeverityWarning, store.SeverityInfo}},
					"router_id": integ, "router": str,
					"target":     openAPI{"type": "string", "description": "the address attacked or misbehaving; the router, or router/interface, for the health kinds"},
					"subscriber": str,
					"direction":  openAPI{"type": "string", "enum": []string{"in", "out", ""}, "description": "in: an attack on the target; out: abuse by the target"},
					"started":    ts, "updated": ts, "ended": openAPI{"type": "string", "format": "date-time", "nullable": true, "description": "null while active"},
					"peak_bps": num, "peak_pps": num, "peak_flows_per_s": num, "peak_at": ts, "summary": str, "evidence": ref("AlertEvidence"),
					"acked_by": str, "acked_at": ts}),
				"MitigationAction": obj(openAPI{"id": integ, "at": ts, "alert_id": integ, "router": str,
					"action": openAPI{"type": "string", "enum": []string{"add", "remove"}}, "kind": openAPI{"type": "string", "enum": []string{"address-list", "blackhole"}},
					"list": str, "address": str, "timeout_ns": integ, "dry_run": boo,
					"result": openAPI{"type": "string", "description": "ok, skipped: <why> or error: <message>"}}),
				"NotificationAttempt": obj(openAPI{"id": integ, "at": ts, "alert_id": integ, "channel": str, "event": str, "attempt": integ, "ok": boo, "error": str}),
				"AlertDetail":         obj(openAPI{"alert": ref("Alert"), "mitigation": arrayOf("MitigationAction"), "notifications": arrayOf("NotificationAttempt")}),
				"DetectorStatus": obj(openAPI{"enabled": boo, "hosts": integ, "max_hosts": integ, "hosts_dropped": integ, "evaluations": integ,
					"last_evaluation": ts, "evaluation_seconds": num, "active": integ, "store_errors": integ, "events_dropped": integ}),
				"NotificationChannelStatus": obj(openAPI{"name": str, "type": str, "sent": integ, "failed": integ, "dropped": integ, "rate_limited": integ,
					"queued": integ, "last_sent": ts, "last_error": str, "last_error_at": ts}),
				"MitigationStatus": obj(openAPI{"router": str, "enabled": boo, "dry_run": boo, "entries": integ, "max_entries": integ,
					"added": integ, "removed": integ, "skipped": integ, "errors": integ, "last_error": str}),
				"AlertStatus": obj(openAPI{"detector": ref("DetectorStatus"), "notifications": arrayOf("NotificationChannelStatus"),
					"mitigation": arrayOf("MitigationStatus")}),
				"TestNotificationRequest": obj(openAPI{"channel": str}, "channel"),
				"TestNotificationResult":  obj(openAPI{"ok": boo}),
				"Token": obj(openAPI{"id": integ, "name": str, "prefix": str, "owner": str, "role": role, "created_at": ts, "expires_at": ts, "expired": boo,
					"last_used": ts, "token": openAPI{"type": "string", "description": "only when created"}}),
				"NATQuery": obj(openAPI{"address": str, "port": integ, "proto": str, "at": ts,
					"window": openAPI{"type": "string", "description": "the tolerance on each side, a Go duration (2m0s)"}}),
				"NATMapping": obj(openAPI{"router_id": integ, "router": str, "proto": str,
					"public_address": str, "public_port": integ, "inside_address": str, "inside_port": integ,
					"remote_address": openAPI{"type": "string", "description": "the far end of the mapping's first flow, where known"},
					"remote_port":    integ, "remotes": openAPI{"type": "integer", "description": "distinct far ends merged into the mapping"},
					"first_seen": ts, "last_seen": ts, "flows": integ,
					"subscriber":        openAPI{"type": "string", "description": "who had the inside address then (subscriber history); empty when unknown"},
					"subscriber_source": str, "customer_id": str}),
				"NATLookup": obj(openAPI{"query": ref("NATQuery"), "matches": arrayOf("NATMapping"),
					"flows":            openAPI{"type": "array", "items": ref("Flow"), "description": "raw flows of the matches around the time, while raw retention keeps them"},
					"flows_kept":       openAPI{"type": "boolean", "description": "false: raw flows of that time are no longer kept"},
					"kept_since":       openAPI{"type": "string", "format": "date-time", "description": "start of the oldest day of NAT mappings kept (absent before the first is written)"},
					"mappings_dropped": openAPI{"type": "integer", "description": "NAT mappings the server could not write since it started (the lookup may miss them)"},
					"message":          openAPI{"type": "string", "description": "what was found, or why nothing was"}}),
				"Rate":     obj(openAPI{"bps": num, "at": openAPI{"type": "string", "format": "date-time", "description": "the start of the 5-minute sample"}}),
				"AppShare": obj(openAPI{"app": str, "bytes": integ}),
				"ReportRow": obj(openAPI{"period": str, "from": ts, "to": ts, "router_id": integ, "router": str, "if_index": integ, "interface": str,
					"subscriber": str, "customer_id": str, "download_bytes": integ, "upload_bytes": integ, "total_bytes": integ,
					"peak_download": ref("Rate"), "peak_upload": ref("Rate"),
					"percentile_download_bps": num, "percentile_upload_bps": num,
					"percentile_billable_bps": openAPI{"type": "number", "description": "the larger of the two directions' percentiles"},
					"samples":                 openAPI{"type": "integer", "description": "the 5-minute samples the percentiles read"}, "top_apps": arrayOf("AppShare")}),
				"Report": obj(openAPI{"by": openAPI{"type": "string", "enum": reportKinds}, "period": str, "from": ts, "to": ts, "tz": str,
					"percentile": num, "rows": arrayOf("ReportRow"), "generated": ts,
					"note": openAPI{"type": "string", "description": "what the numbers cannot show (a period before the first flow...)"}}),
				"ReportDelivery": obj(openAPI{"target": str, "ok": boo, "detail": str}),
				"ReportRun": obj(openAPI{"id": integ, "schedule": str, "period": str, "from": ts, "to": ts, "started": ts, "finished": ts,
					"ok": boo, "catch_up": boo, "rows": integ, "deliveries": arrayOf("ReportDelivery"), "error": str}),
				"ReportSchedule": obj(openAPI{"name": str, "every": openAPI{"type": "string", "enum": []string{"month", "week"}}, "by": str, "tz": str,
					"targets": openAPI{"type": "array", "items": str}, "next_period": str,
					"next_due": openAPI{"type": "string", "format": "date-time", "description": "when the next period's run is due (once it closed, plus the settle delay)"},
					"last_run": ref("ReportRun")}),
				"ReportRuns": obj(openAPI{"configured": boo, "message": str, "schedules": arrayOf("ReportSchedule"), "runs": arrayOf("ReportRun")}),
				"AddressHolder": obj(openAPI{"address": str, "at": ts, "found": boo, "subscriber": str, "customer_id": str,
					"source": openAPI{"type": "string", "description": "how the history learned it (dhcp, pppoe, queue, import...)"},
					"router": str, "prefix": str, "from": ts,
					"to":      openAPI{"type": "string", "format": "date-time", "description": "absent while current"},
					"message": str}),
			},
		},
	}
}

// handleOpenAPI serves the OpenAPI document, each operation with the
// least role that may call it (x-min-role; 403 below it).
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc := buildOpenAPI()
	for path, ops := range doc["paths"].(openAPI) {
		for method, o := range ops.(openAPI) {
			role, ok := s.routeRoles[routeKey(strings.ToUpper(method), "/api/v1"+path)]
			if !ok {
				continue
			}
			o := o.(openAPI)
			o["x-min-role"] = role
			if role != store.RoleViewer || path == "/users/{name}/password" {
				o["responses"].(openAPI)["403"] = openAPI{"$ref": "#/components/responses/Error"}
			}
		}
	}
	writeJSON(w, http.StatusOK, doc)
}
