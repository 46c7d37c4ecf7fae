package provision

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
		return sum
	}
	return 0
}

func testutilCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return gather(t, reg, name)
}

func testutilGauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return gather(t, reg, name)
}
