package simulator

import "math"

// plan decides, for request i, whether it re-sends an earlier delivery and
// which delivery it carries. It spreads duplicates evenly (request i is a
// duplicate when floor((i+1)·f) > floor(i·f)), so any prefix of a run holds
// the same fraction, and it needs no state: workers ask in any order.
type plan struct {
	fraction float64
	seed     uint64
}

// duplicatesBefore is the number of duplicates among requests [0, i).
func (p plan) duplicatesBefore(i int) int {
	return int(math.Floor(float64(i) * p.fraction))
}

// isDuplicate reports whether request i re-sends an earlier delivery.
// Request 0 never does, since fraction < 1.
func (p plan) isDuplicate(i int) bool {
	return p.duplicatesBefore(i+1) > p.duplicatesBefore(i)
}

// delivery returns the delivery that request i carries: a new one, numbered
// in order, or a pseudo-random earlier one for a duplicate.
func (p plan) delivery(i int) (d int, duplicate bool) {
	distinctBefore := i - p.duplicatesBefore(i)
	if !p.isDuplicate(i) {
		return distinctBefore, false
	}
	return int(mix(p.seed^uint64(i)) % uint64(distinctBefore)), true
}

// distinct is the number of deliveries among count requests.
func (p plan) distinct(count int) int {
	return count - p.duplicatesBefore(count)
}
