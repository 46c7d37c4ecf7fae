package store

import "time"

// Coverage (issue 17): flow totals checked against the routers' own
// interface counters. The counter poller (package coverage) saves
// CounterDeltas and a CoverageState per router; a CoverageReport compares
// them with the per-interface flow rollups over the same minutes.

// CounterDelta is what one interface's counters grew by between two polls
// of its router, From to To (router wraps and resets already handled).
type CounterDelta struct {
	RouterID  int64
	Index     uint32 // the interface's ifIndex, as in flow records
	From, To  time.Time
	RxBytes   uint64
	TxBytes   uint64
	RxPackets uint64
	TxPackets uint64
}

// CounterTotals are one interface's flow and counter totals over the
// minutes (or hours) its counters covered fully.
type CounterTotals struct {
	RouterID int64
	Index    uint32
	// Flow totals (scaled by sampling): In is traffic whose input
	// interface is Index (its rx), Out whose output interface is Index
	// (its tx).
	FlowBytesIn, FlowBytesOut     uint64
	FlowPacketsIn, FlowPacketsOut uint64
	// Counter totals: rx and tx of the interface.
	CounterBytesIn, CounterBytesOut     uint64
	CounterPacketsIn, CounterPacketsOut uint64
	// Buckets is the number of minutes (or hours) counted.
	Buckets int
}

// CounterBucket is one interface's counters over one minute (or hour)
// they covered fully: what CounterTotals sums, for a flow store kept
// apart from the counters (ClickHouse) to set its flows beside.
type CounterBucket struct {
	RouterID int64
	Index    uint32
	// T is the bucket's start, unix seconds.
	T                                   int64
	CounterBytesIn, CounterBytesOut     uint64
	CounterPacketsIn, CounterPacketsOut uint64
}

// IfFlowKey is one interface's side of one bucket in a flow store's
// interface rollups: Side 0 is traffic in (input interface), 1 out.
type IfFlowKey struct {
	RouterID int64
	Index    uint32
	Side     uint8
	T        int64
}

// SumCounterTotals adds buckets (ordered by router and interface) and the
// flows of the same buckets into one CounterTotals per interface.
func SumCounterTotals(buckets []CounterBucket, flows map[IfFlowKey][2]uint64) []CounterTotals {
	var out []CounterTotals
	for _, b := range buckets {
		if n := len(out); n == 0 || out[n-1].RouterID != b.RouterID || out[n-1].Index != b.Index {
			out = append(out, CounterTotals{RouterID: b.RouterID, Index: b.Index})
		}
		t := &out[len(out)-1]
		t.Buckets++
		t.CounterBytesIn += b.CounterBytesIn
		t.CounterBytesOut += b.CounterBytesOut
		t.CounterPacketsIn += b.CounterPacketsIn
		t.CounterPacketsOut += b.CounterPacketsOut
		in := flows[IfFlowKey{b.RouterID, b.Index, 0, b.T}]
		o := flows[IfFlowKey{b.RouterID, b.Index, 1, b.T}]
		t.FlowBytesIn += in[0]
		t.FlowPacketsIn += in[1]
		t.FlowBytesOut += o[0]
		t.FlowPacketsOut += o[1]
	}
	return out
}

// FastTrackRule is one /ip/firewall/filter rule with
// action=fasttrack-connection.
type FastTrackRule struct {
	ID       string `json:"id"`
	Chain    string `json:"chain"`
	Disabled bool   `json:"disabled"`
	// HWOffload is RouterOS 7's hw-offload=yes: with the switch's
	// l3-hw-offloading, its connections are routed by the switch chip.
	HWOffload bool   `json:"hw_offload"`
	Bytes     uint64 `json:"bytes"`
	Packets   uint64 `json:"packets"`
}

// CoverageState is what the counter poller last learned of a router: its
// own counters, and the configuration the diagnosis reads.
type CoverageState struct {
	RouterID int64  `json:"router_id"`
	Router   string `json:"router"`
	// Polls and Failures count the counter polls since flowbox started
	// (a failure is a dial, login or print that failed); LastError is the
	// latest failure's message, cleared by a successful poll.
	Polls       uint64    `json:"polls"`
	Failures    uint64    `json:"failures"`
	LastPoll    time.Time `json:"last_poll"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at"`
	// Resets counts interface counters that went down (a reboot, or
	// /interface reset-counters), Wraps those that wrapped at 2^32, and
	// Reboots the reboots seen (uptime went down).
	Resets  uint64 `json:"resets"`
	Wraps   uint64 `json:"wraps"`
	Reboots uint64 `json:"reboots"`
	// Version is /system/resource version.
	Version string `json:"version"`
	// Config is the last configuration read (ConfigError the reason it
	// could not be, then Config is the one before).
	ConfigRead  bool   `json:"config_read"`
	ConfigError string `json:"config_error,omitempty"`
	// TrafficFlowEnabled, TrafficFlowInterfaces ("all" or a list),
	// sampling and the active timeout from /ip/traffic-flow.
	TrafficFlowEnabled    bool          `json:"traffic_flow_enabled"`
	TrafficFlowInterfaces string        `json:"traffic_flow_interfaces"`
	PacketSampling        bool          `json:"packet_sampling"`
	SamplingInterval      int           `json:"sampling_interval"`
	SamplingSpace         int           `json:"sampling_space"`
	ActiveFlowTimeout     time.Duration `json:"active_flow_timeout"`
	// FastTrack are the fasttrack-connection filter rules.
	FastTrack []FastTrackRule `json:"fasttrack,omitempty"`
	// L3HWOffload is /interface/ethernet/switch l3-hw-offloading=yes on
	// some switch (RouterOS 7).
	L3HWOffload bool `json:"l3hw_offload"`
	// Interfaces names the router's interfaces by ifIndex, as last polled.
	Interfaces map[uint32]string `json:"interfaces,omitempty"`
}

// CoverageQuery asks for a coverage report.
type CoverageQuery struct {
	// RouterID restricts the report to one router (0: all).
	RouterID int64
	// From and To bound the report; they are rounded to whole minutes
	// (hours beyond the minute rollups' retention).
	From, To time.Time
}

// InterfaceCoverage is one interface's coverage: flow totals over counter
// totals, per direction. The JSON form is the one of `flowbox coverage
// --json` and /api/v1/coverage.
type InterfaceCoverage struct {
	RouterID        int64  `json:"router_id"`
	Router          string `json:"router"`
	Index           uint32 `json:"if_index"`
	Interface       string `json:"interface"`
	FlowBytesIn     uint64 `json:"flow_bytes_in"`
	CounterBytesIn  uint64 `json:"counter_bytes_in"`
	FlowBytesOut    uint64 `json:"flow_bytes_out"`
	CounterBytesOut uint64 `json:"counter_bytes_out"`
	FlowPacketsIn   uint64 `json:"flow_packets_in"`
	CounterPktsIn   uint64 `json:"counter_packets_in"`
	FlowPacketsOut  uint64 `json:"flow_packets_out"`
	CounterPktsOut  uint64 `json:"counter_packets_out"`
	// CoverageIn and CoverageOut are percentages (flow bytes / counter
	// bytes x 100); nil where the counters saw too little traffic to
	// judge.
	CoverageIn  *float64 `json:"coverage_in"`
	CoverageOut *float64 `json:"coverage_out"`
	// Low is set when a direction is below the threshold.
	Low bool `json:"low"`
	// Diagnosis names the likely cause when Low, what to change and its
	// cost; "" otherwise.
	Diagnosis string `json:"diagnosis"`
	// Minutes is how many minutes (or hours x 60) were compared.
	Minutes int `json:"minutes"`
}

// Coverage health of a router.
const (
	CoverageOK      = "ok"      // every interface within the threshold
	CoverageLow     = "low"     // some interface below it
	CoverageUnknown = "unknown" // no counters (not polled yet, or failing)
)

// RouterCoverage sums up one router.
type RouterCoverage struct {
	RouterID int64  `json:"router_id"`
	Router   string `json:"router"`
	// Health is CoverageOK, CoverageLow or CoverageUnknown.
	Health string `json:"health"`
	// CoverageIn and CoverageOut are the router's totals over its
	// interfaces (percent), nil when unknown.
	CoverageIn  *float64 `json:"coverage_in"`
	CoverageOut *float64 `json:"coverage_out"`
	// Causes are the diagnoses found, most likely first.
	Causes []string `json:"causes"`
	// Polls, Failures, LastPoll and LastError are the counter poller's.
	Polls     uint64     `json:"polls"`
	Failures  uint64     `json:"failures"`
	LastPoll  *time.Time `json:"last_poll,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Resets    uint64     `json:"counter_resets"`
	Wraps     uint64     `json:"counter_wraps"`
	Reboots   uint64     `json:"reboots"`
}

// CoverageReport is the answer to a CoverageQuery.
type CoverageReport struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Resolution is "minute" or "hour".
	Resolution string `json:"resolution"`
	// Threshold is the percentage below which coverage is low.
	Threshold  float64             `json:"threshold"`
	Routers    []RouterCoverage    `json:"routers"`
	Interfaces []InterfaceCoverage `json:"interfaces"`
}
