package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// InterfaceFlows returns the flow totals of every interface side per
// minute (or hour, when hourly) over [from, to), of one router (0: all),
// as [bytes, packets] scaled by sampling: the flow half of a coverage
// report, set beside the counters SQLite keeps (store.SumCounterTotals).
func (r *Reader) InterfaceFlows(ctx context.Context, routerID int64, from, to time.Time, hourly bool) (map[store.IfFlowKey][2]uint64, error) {
	table := "if_m"
	if hourly {
		table = "if_h"
	}
	where := ""
	if routerID != 0 {
		where = fmt.Sprintf(" AND src = %d", routerID)
	}
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT src, ifx, side, toInt64(toUnixTimestamp(t)), sum(bytes), sum(packets) FROM %s.%s"+
		" WHERE site = %s AND t >= toDateTime(%d) AND t < toDateTime(%d)%s GROUP BY src, ifx, side, t FORMAT RowBinary",
		r.c.cfg.Database, table, quote(r.site), from.Unix(), to.Unix(), where))
	if err != nil {
		return nil, fmt.Errorf("cannot read the interface totals from clickhouse: %w", err)
	}
	m := map[store.IfFlowKey][2]uint64{}
	rr := &rowReader{b: out}
	for len(rr.b) > 0 && rr.err == nil {
		k := store.IfFlowKey{RouterID: int64(rr.u64()), Index: rr.u32(), Side: rr.u8(), T: int64(rr.u64())}
		v := [2]uint64{rr.u64(), rr.u64()}
		if rr.err == nil {
			m[k] = v
		}
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read the interface totals from clickhouse: %w", rr.err)
	}
	return m, nil
}
