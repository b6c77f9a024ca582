package ingest

import "testing"

func TestBodyBudgetReserve(t *testing.T) {
	const total = 1 << 20 // large bodies share 768 KiB of it
	type step struct {
		reserve int64 // negative: release that many bytes
		want    bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"large bodies stop at three quarters", []step{{256 << 10, true}, {256 << 10, true}, {256 << 10, true}, {256 << 10, false}}},
		{"ordinary bodies use the kept quarter once large ones fill theirs", []step{
			{768 << 10, true}, {ordinaryBodyBytes + 1, false}, {ordinaryBodyBytes, true}, {ordinaryBodyBytes, true},
			{ordinaryBodyBytes, true}, {ordinaryBodyBytes, true}, {1, false},
		}},
		{"ordinary bodies may take the whole budget", append(repeat(step{ordinaryBodyBytes, true}, 16), step{1, false})},
		{"large bodies take at most their share beside ordinary ones", []step{
			{900 << 10, false}, {ordinaryBodyBytes, true}, {768 << 10, true}, {ordinaryBodyBytes, true},
			{ordinaryBodyBytes, true}, {ordinaryBodyBytes, true}, {1, false},
		}},
		{"released bytes are free again", []step{{768 << 10, true}, {256 << 10, false}, {-(768 << 10), true}, {768 << 10, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBodyBudget(total, nil)
			for i, s := range tt.steps {
				if s.reserve < 0 {
					b.release(-s.reserve)
					continue
				}
				if got := b.reserve(s.reserve); got != s.want {
					t.Fatalf("step %d, reserve %d with %d used (%d large): got %v, want %v", i, s.reserve, b.used, b.largeUsed, got, s.want)
				}
			}
		})
	}
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestBodyCharge(t *testing.T) {
	const maxBody = 1 << 20
	tests := []struct {
		name          string
		contentLength int64
		want          int64
	}{
		{"declared", 300, 300},
		{"no body", 0, 0},
		{"chunked: what it may grow to", -1, maxBody},
		{"at the limit", maxBody, maxBody},
		{"above the limit: refused unread, free", maxBody + 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bodyCharge(tt.contentLength, maxBody); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestBodyMemoryTooSmall(t *testing.T) {
	tests := []struct {
		name           string
		total, maxBody int64
		want           bool
	}{
		{"defaults", 64 << 20, 1 << 20, false},
		{"one large body beside the quarter", 4 << 20, 3 << 20, false},
		{"large body in the quarter only", 4 << 20, 3<<20 + 1, true},
		{"ordinary limit fits", 64 << 10, 64 << 10, false},
		{"ordinary limit does not fit", 32 << 10, 64 << 10, true},
		{"zero", 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BodyMemoryTooSmall(tt.total, tt.maxBody); got != tt.want {
				t.Errorf("BodyMemoryTooSmall(%d, %d): got %v, want %v", tt.total, tt.maxBody, got, tt.want)
			}
		})
	}
}
