package kube

import (
	"testing"
	"time"
)

func TestHoldoff(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		events []int // ms after t0
		due    int   // ms after t0
	}{
		{"lone change waits for quiet", []int{0}, 10},
		{"burst extends the wait", []int{0, 4, 9}, 19},
		{"trickle is capped", []int{0, 8, 16, 24, 32, 40, 48}, 50},
		{"cap counts from the first change", []int{5, 14, 23, 32, 41, 50}, 55},
	}
	for _, c := range cases {
		h := holdoff{quiet: ms(10), max: ms(50)}
		for _, e := range c.events {
			h.add(t0.Add(ms(e)))
		}
		due := t0.Add(ms(c.due))
		if got := h.due(); !got.Equal(due) {
			t.Errorf("%s: due at %v, want %v", c.name, got.Sub(t0), ms(c.due))
		}
		if h.take(due.Add(-time.Nanosecond)) {
			t.Errorf("%s: taken before due", c.name)
		}
		if !h.take(due) {
			t.Errorf("%s: not taken when due", c.name)
		}
		if h.take(due.Add(time.Hour)) {
			t.Errorf("%s: taken twice", c.name)
		}
	}

	// After a take, the next change starts a new batch with a fresh cap.
	h := holdoff{quiet: ms(10), max: ms(50)}
	h.add(t0)
	h.take(t0.Add(ms(10)))
	h.add(t0.Add(ms(100)))
	if got := h.due().Sub(t0); got != ms(110) {
		t.Errorf("second batch due at %v, want 110ms", got)
	}
}
