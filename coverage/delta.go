package coverage

// Counter arithmetic. RouterOS's interface counters are 64-bit, but some
// interfaces and older releases count in 32 bits; a reboot or
// `/interface reset-counters` starts them again from 0.

// Change says how a counter moved between two polls.
type Change int

// The ways a counter moves.
const (
	Grew    Change = iota // new >= old
	Wrapped               // went past 2^32 and started again
	Reset                 // went down: reboot or reset-counters
)

// wrapLimit is the largest delta believed across a 32-bit wrap: beyond
// it the counter was reset rather than wrapped.
const wrapLimit = 1 << 31

// Delta returns what a counter grew by from old to cur. After a reboot
// (rebooted) or a reset, cur is what was counted since, all of it within
// the interval. A counter below 2^32 that fell by more than it could
// have risen wrapped at 2^32.
func Delta(old, cur uint64, rebooted bool) (uint64, Change) {
	switch {
	case rebooted:
		return cur, Reset
	case cur >= old:
		return cur - old, Grew
	case old < 1<<32 && cur+(1<<32)-old < wrapLimit:
		return cur + (1 << 32) - old, Wrapped
	default:
		return cur, Reset
	}
}
