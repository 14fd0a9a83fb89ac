package main

import "testing"

func TestPrefixList(t *testing.T) {
	var l prefixList
	if err := l.Set("10.0.0.0/8, 192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("2001:db8::1/48,"); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/48"}
	if len(l) != len(want) {
		t.Fatalf("got %v, want %v", l, want)
	}
	for i, p := range l {
		if p.String() != want[i] {
			t.Errorf("prefix %d: %s, want %s", i, p, want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "1.2.3"} {
		var l prefixList
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted %v", bad, l)
		}
	}
}

// FuzzPrefixList: Set never panics, and what it accepts prints as a list
// that parses back to the same prefixes.
func FuzzPrefixList(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::1", "a,b", ",", "1.2.3.4/0,::/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var l prefixList
		if l.Set(s) != nil {
			return
		}
		var again prefixList
		if err := again.Set(l.String()); err != nil || len(again) != len(l) {
			t.Fatalf("%q → %q → %v, %v", s, l.String(), again, err)
		}
		for i := range l {
			if again[i] != l[i] || l[i] != l[i].Masked() || !l[i].IsValid() {
				t.Fatalf("%q: prefix %d %v / %v", s, i, l[i], again[i])
			}
		}
	})
}
