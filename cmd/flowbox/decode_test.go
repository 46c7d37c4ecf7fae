package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// decodeKeys are the keys of every JSON object `flowbox decode` prints.
var decodeKeys = []string{
	"exporter", "version", "domain", "template", "start", "end", "src", "dst",
	"src_port", "dst_port", "proto", "tcp_flags", "in_if", "out_if", "next_hop",
	"src_as", "dst_as", "post_nat_src", "post_nat_dst", "post_nat_src_port",
	"post_nat_dst_port", "bytes", "packets", "sampling_rate",
}

// runCmd runs flowbox in-process and returns stdout, stderr and the error.
func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	err := run(context.Background(), e, args)
	return out.String(), errOut.String(), err
}

// decodedFlow is one printed line.
type decodedFlow map[string]any

// parseDecoded parses stdout, checking that every line is a JSON object
// with exactly the documented keys.
func parseDecoded(t *testing.T, stdout string) []decodedFlow {
	t.Helper()
	var out []decodedFlow
	want := slices.Sorted(slices.Values(decodeKeys))
	for i, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var f decodedFlow
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		var keys []string
		for k := range f {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("line %d keys = %v, want %v", i+1, keys, want)
		}
		out = append(out, f)
	}
	return out
}

func (f decodedFlow) num(t *testing.T, key string) uint64 {
	t.Helper()
	n, ok := f[key].(json.Number)
	if !ok {
		t.Fatalf("%s = %#v, not a number", key, f[key])
	}
	var v uint64
	if err := json.Unmarshal([]byte(n.String()), &v); err != nil {
		t.Fatalf("%s = %s: %v", key, n, err)
	}
	return v
}

// truthTotals reads the tshark totals of a capture.
func truthTotals(t *testing.T, pcapPath string) (flows, octets, packets uint64) {
	t.Helper()
	b, err := os.ReadFile(pcapPath + ".truth.json")
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		Totals struct {
			FlowRecords uint64 `json:"flow_records"`
			Octets      uint64 `json:"octets"`
			Packets     uint64 `json:"packets"`
		} `json:"totals"`
	}
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	return truth.Totals.FlowRecords, truth.Totals.Octets, truth.Totals.Packets
}

func sumDecoded(t *testing.T, flows []decodedFlow) (octets, packets uint64) {
	t.Helper()
	for _, f := range flows {
		octets += f.num(t, "bytes")
		packets += f.num(t, "packets")
	}
	return octets, packets
}

// TestDecodeMikroTik decodes the two MikroTik captures (one invocation
// each, then both at once) and compares with tshark's totals.
func TestDecodeMikroTik(t *testing.T) {
	dir := testutil.CapturesDir(t)
	ipfix := filepath.Join(dir, "logstash-codec-netflow", "ipfix-mikrotik-routeros-6-39-2.pcap")
	v5 := filepath.Join(dir, "logstash-codec-netflow", "netflow5-mikrotik.pcap")
	var allFlows, allOctets, allPackets uint64
	for _, file := range []string{ipfix, v5} {
		stdout, stderr, err := runCmd(t, "decode", file)
		if err != nil {
			t.Fatalf("decode %s: %v\n%s", file, err, stderr)
		}
		flows := parseDecoded(t, stdout)
		wantFlows, wantOctets, wantPackets := truthTotals(t, file)
		octets, packets := sumDecoded(t, flows)
		if uint64(len(flows)) != wantFlows || octets != wantOctets || packets != wantPackets {
			t.Errorf("%s: %d flows, %d bytes, %d packets; tshark: %d, %d, %d",
				filepath.Base(file), len(flows), octets, packets, wantFlows, wantOctets, wantPackets)
		}
		for _, want := range []string{"packets: ", "flow records: " + strconv.FormatUint(wantFlows, 10), "options records: 0",
			"data sets without template: 0", "errors: 0"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: summary lacks %q:\n%s", filepath.Base(file), want, stderr)
			}
		}
		allFlows += wantFlows
		allOctets += wantOctets
		allPackets += wantPackets
	}

	// Both files in one run: one decoder, flows in file order.
	stdout, stderr, err := runCmd(t, "decode", ipfix, v5)
	if err != nil {
		t.Fatalf("decode both: %v\n%s", err, stderr)
	}
	flows := parseDecoded(t, stdout)
	octets, packets := sumDecoded(t, flows)
	if uint64(len(flows)) != allFlows || octets != allOctets || packets != allPackets {
		t.Errorf("both files: %d flows, %d bytes, %d packets; want %d, %d, %d",
			len(flows), octets, packets, allFlows, allOctets, allPackets)
	}
	// The first record of the IPFIX capture (logstash's and beats' goldens).
	first := flows[0]
	for k, want := range map[string]string{
		"exporter": "192.0.2.10:40000", "src": "10.10.8.197", "dst": "192.168.128.17",
		"version": "10", "template": "258", "domain": "0",
		"src_port": "123", "dst_port": "123", "proto": "17", "bytes": "152", "packets": "2",
	} {
		if got := stringOf(first[k]); got != want {
			t.Errorf("first record %s = %q, want %q", k, got, want)
		}
	}
	// The first v5 record follows the 46 IPFIX ones.
	if v := stringOf(flows[46]["version"]); v != "5" {
		t.Errorf("record 47 version = %s, want 5", v)
	}
	for i, f := range flows {
		for _, k := range []string{"start", "end"} {
			s := stringOf(f[k])
			if len(s) != len("2006-01-02T15:04:05.000Z") || !strings.HasSuffix(s, "Z") {
				t.Fatalf("record %d %s = %q, want RFC 3339 UTC with milliseconds", i, k, s)
			}
		}
	}
}

// TestDecodeSoftflowd checks the softflowd v9 export (whose header count
// is wrong) against the totals nfcapd stored.
func TestDecodeSoftflowd(t *testing.T) {
	file := filepath.Join(testutil.CapturesDir(t), "exporters", "softflowd-v9.pcap")
	stdout, stderr, err := runCmd(t, "decode", file)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, stderr)
	}
	flows := parseDecoded(t, stdout)
	octets, packets := sumDecoded(t, flows)
	if len(flows) != 58 || packets != 3817 || octets != 14146460 {
		t.Errorf("softflowd v9: %d flows / %d packets / %d bytes, want 58 / 3817 / 14146460", len(flows), packets, octets)
	}
	// softflowd's options record is counted, not printed.
	if !strings.Contains(stderr, "options records: 1\n") {
		t.Errorf("summary does not count the options record:\n%s", stderr)
	}
}

// TestDecodeNetScalerTemplatesLiveForTheFile: the NetScaler capture sends
// its template, then its data 15 days later (capture time). In a file the
// template lives for the whole file: the 3 flows tshark sees are printed
// (with the collector's 30-minute TTL they were dropped).
func TestDecodeNetScalerTemplatesLiveForTheFile(t *testing.T) {
	file := filepath.Join(testutil.CapturesDir(t), "logstash-codec-netflow", "ipfix-netscaler-with-variable-length-fields.pcap")
	stdout, stderr, err := runCmd(t, "decode", file)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, stderr)
	}
	flows := parseDecoded(t, stdout)
	wantFlows, wantOctets, wantPackets := truthTotals(t, file)
	octets, packets := sumDecoded(t, flows)
	if len(flows) != 3 || uint64(len(flows)) != wantFlows || octets != wantOctets || packets != wantPackets {
		t.Errorf("%d flows, %d bytes, %d packets; tshark: %d, %d, %d", len(flows), octets, packets, wantFlows, wantOctets, wantPackets)
	}
	// The capture's set 280 never gets a template: it waits to the end.
	if !strings.Contains(stderr, "flow records: 3\n") || !strings.Contains(stderr, "still waiting at the end: 1 sets") {
		t.Errorf("summary:\n%s", stderr)
	}
}

// TestDecodeMalformed: malformed NetFlow inside a valid capture is counted
// in the summary, without failing the command.
func TestDecodeMalformed(t *testing.T) {
	file := filepath.Join(testutil.CapturesDir(t), "libnetflow9", "malformed_1.pcap")
	_, stderr, err := runCmd(t, "decode", file)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if strings.Contains(stderr, "\nerrors: 0\n") || !strings.Contains(stderr, "errors: ") {
		t.Errorf("summary does not count the malformed datagrams:\n%s", stderr)
	}
	if !strings.Contains(stderr, "malformed_1.pcap: datagram at offset ") {
		t.Errorf("the decode errors are not reported with file and offset:\n%s", stderr)
	}
}

// TestDecodeTruncated cuts a capture in the middle of a record: the flows
// before the cut are printed, then the error names the file and offset and
// the command fails.
func TestDecodeTruncated(t *testing.T) {
	src := filepath.Join(testutil.CapturesDir(t), "logstash-codec-netflow", "ipfix-mikrotik-routeros-6-39-2.pcap")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// The capture has 3 records; cut inside the last one.
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, b[:len(b)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCmd(t, "decode", cut)
	if err == nil {
		t.Fatal("decode of a truncated file succeeded")
	}
	if !strings.Contains(err.Error(), cut) || !strings.Contains(err.Error(), "offset") {
		t.Errorf("error %q does not name the file and the offset", err)
	}
	if exitCode(err) == 0 {
		t.Error("exit status 0 for a truncated file")
	}
	// Templates and the IPv4 data set came before the cut.
	if flows := parseDecoded(t, stdout); len(flows) != 28 {
		t.Errorf("%d flows printed before the cut, want 28", len(flows))
	}
	if !strings.Contains(stderr, "flow records: 28") {
		t.Errorf("summary:\n%s", stderr)
	}

	// Not a capture at all.
	junk := filepath.Join(t.TempDir(), "junk.pcap")
	if err := os.WriteFile(junk, []byte("this is not a capture file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, "decode", junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("decode of junk = %v, want an error naming the file", err)
	}
}

// TestDecodeArgs: a missing file fails naming it (after the other files
// were decoded), and no file is a usage error.
func TestDecodeArgs(t *testing.T) {
	dir := testutil.CapturesDir(t)
	missing := filepath.Join(t.TempDir(), "missing.pcap")
	good := filepath.Join(dir, "logstash-codec-netflow", "netflow5-mikrotik.pcap")
	stdout, _, err := runCmd(t, "decode", missing, good)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("decode of a missing file = %v, want a not-exist error naming it", err)
	}
	if n := len(parseDecoded(t, stdout)); n != 30 {
		t.Errorf("%d flows from the file after the missing one, want 30", n)
	}

	_, _, err = runCmd(t, "decode")
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("decode without file = %v, want a usage error", err)
	}
	_, _, err = runCmd(t, "decode", "--no-such-flag", good)
	if !errors.As(err, &ue) {
		t.Errorf("decode with a bad flag = %v, want a usage error", err)
	}
}

// TestAppendFlowJSON checks absent values and the time format on a
// synthetic flow.
func TestAppendFlowJSON(t *testing.T) {
	f := store.Flow{
		Exporter: netip.MustParseAddrPort("[2001:db8::1]:2055"),
		Version:  9, Domain: 7, TemplateID: 256,
		Start: 1700000000123, End: 1700000001456,
		SrcAddr: netip.MustParseAddr("2001:db8::2"), DstAddr: netip.MustParseAddr("2001:db8::3"),
		SrcPort: 1, DstPort: 2, Proto: 6, TCPFlags: 0x12, InIf: 0, OutIf: 9,
		SrcAS: 64500, DstAS: 4200000000, Bytes: 1 << 40, Packets: 3, SamplingRate: 100,
	}
	got := string(appendFlowJSON(nil, &f))
	want := `{"exporter":"[2001:db8::1]:2055","version":9,"domain":7,"template":256,` +
		`"start":"2023-11-14T22:13:20.123Z","end":"2023-11-14T22:13:21.456Z",` +
		`"src":"2001:db8::2","dst":"2001:db8::3","src_port":1,"dst_port":2,"proto":6,"tcp_flags":18,` +
		`"in_if":0,"out_if":9,"next_hop":"","src_as":64500,"dst_as":4200000000,` +
		`"post_nat_src":"","post_nat_dst":"","post_nat_src_port":0,"post_nat_dst_port":0,` +
		`"bytes":1099511627776,"packets":3,"sampling_rate":100}` + "\n"
	if got != want {
		t.Errorf("appendFlowJSON:\n got %s\nwant %s", got, want)
	}
	parseDecoded(t, got)
}

func BenchmarkAppendFlowJSON(b *testing.B) {
	f := store.Flow{
		Exporter: netip.MustParseAddrPort("192.0.2.10:40000"), Version: 10, TemplateID: 258,
		Start: 1700000000123, End: 1700000001456,
		SrcAddr: netip.MustParseAddr("10.10.8.197"), DstAddr: netip.MustParseAddr("192.168.128.17"),
		NextHop: netip.MustParseAddr("192.168.224.1"), PostNATSrcAddr: netip.MustParseAddr("192.168.230.216"),
		PostNATDstAddr: netip.MustParseAddr("192.168.128.17"), SrcPort: 123, DstPort: 123, Proto: 17,
		Bytes: 152, Packets: 2,
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFlowJSON(buf[:0], &f)
	}
}

func stringOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}
