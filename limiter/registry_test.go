package limiter

import (
	"testing"
)

func TestRegistryKeepsBucketsOfUnchangedPolicies(t *testing.T) {
	base := Policy{ID: "ns/rl", Limit: 1, Burst: 1, Key: KeyHeader, Header: "X-Api-Key"}
	for _, tc := range []struct {
		name   string
		change func(p Policy) Policy
		same   bool
	}{
		{"identical", func(p Policy) Policy { return p }, true},
		{"header spelled differently", func(p Policy) Policy { p.Header = "x-api-key"; return p }, true},
		{"limit changed", func(p Policy) Policy { p.Limit = 2; return p }, false},
		{"burst changed", func(p Policy) Policy { p.Burst = 2; return p }, false},
		{"key kind changed", func(p Policy) Policy { p.Key = KeyClientIP; return p }, false},
		{"header changed", func(p Policy) Policy { p.Header = "X-User"; return p }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(Options{})
			first := r.Get(base)
			first.Allow(t0, "alice")
			second := r.Get(tc.change(base))
			if (first == second) != tc.same {
				t.Fatalf("same *Limiter = %v, want %v", first == second, tc.same)
			}
			// Kept buckets still refuse alice; fresh ones allow her.
			if ok, _ := second.Allow(t0, "alice"); ok == tc.same {
				t.Fatalf("alice allowed = %v after rebuild, want %v", ok, !tc.same)
			}
			if got := r.Get(tc.change(base)); got != second {
				t.Fatal("asking again for the new policy returned another limiter")
			}
		})
	}
}

func TestRegistryRetain(t *testing.T) {
	r := NewRegistry(Options{})
	a := r.Get(Policy{ID: "a", Limit: 1, Burst: 1})
	b := r.Get(Policy{ID: "b", Limit: 1, Burst: 1})
	a.Allow(t0, "")
	b.Allow(t0, "")
	r.Retain(map[string]bool{"a": true})
	if r.Get(Policy{ID: "a", Limit: 1, Burst: 1}) != a {
		t.Fatal("retained limiter a was replaced")
	}
	b2 := r.Get(Policy{ID: "b", Limit: 1, Burst: 1})
	if b2 == b {
		t.Fatal("dropped limiter b came back with its buckets")
	}
	if ok, _ := b2.Allow(t0, ""); !ok {
		t.Fatal("recreated limiter b is not fresh")
	}
	r.Retain(nil)
	if r.Get(Policy{ID: "a", Limit: 1, Burst: 1}) == a {
		t.Fatal("Retain(nil) kept limiter a")
	}
}
