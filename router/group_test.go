package router

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// mutate returns a copy of r changed in one way: most changes keep the
// match criteria as New normalises them (case, order, ignored fields,
// fields CriteriaKey leaves out), the others change them, some only as a
// multiset or by a flag with the same text.
func mutate(rng *rand.Rand, r Route[string]) Route[string] {
	r.Headers, r.Query = slices.Clone(r.Headers), slices.Clone(r.Query)
	switch rng.IntN(22) {
	// Equivalent.
	case 0:
	case 1:
		if !r.MethodRegex {
			r.Method = strings.ToLower(r.Method)
		}
	case 2:
		if !r.HostRegex {
			r.Host = strings.ToUpper(r.Host)
		}
	case 3:
		rng.Shuffle(len(r.Headers), func(i, j int) { r.Headers[i], r.Headers[j] = r.Headers[j], r.Headers[i] })
		rng.Shuffle(len(r.Query), func(i, j int) { r.Query[i], r.Query[j] = r.Query[j], r.Query[i] })
	case 4:
		for i := range r.Headers {
			r.Headers[i].Name = strings.ToLower(r.Headers[i].Name)
			if r.Headers[i].Present {
				r.Headers[i].Value, r.Headers[i].Regex = "ignored", true
			}
		}
	case 5:
		r.ID, r.Tenant, r.Value, r.Group, r.Weight = r.ID+"x", r.Tenant+"x", "other", "g2", 7
	case 6:
		if r.Host == "::1" {
			r.Host = "[::1]"
		}
		if r.Headers == nil {
			r.Headers = []HeaderMatch{}
		}
	// Different.
	case 7:
		r.Path += "x"
	case 8:
		r.Precedence++
	case 9:
		r.CaseInsensitive = !r.CaseInsensitive
	case 10:
		if r.Kind == Prefix {
			r.Kind = Exact
		} else if r.Kind == Exact {
			r.Kind = Prefix
		}
	case 11:
		r.Method = "DELETE"
	case 12:
		r.MethodRegex = !r.MethodRegex && r.Method != ""
	case 13:
		r.Headers = append(r.Headers, HeaderMatch{Name: "X-Env", Value: "prod"})
	case 14:
		if len(r.Headers) > 0 {
			r.Headers = append(r.Headers, r.Headers[0]) // a multiset, not a set
		}
	case 15:
		if len(r.Query) > 0 {
			r.Query[0].Regex = !r.Query[0].Regex
		}
	case 16:
		if len(r.Query) > 0 {
			r.Query[0].Present = !r.Query[0].Present
		}
	case 17:
		r.Query = append(r.Query, QueryMatch{Name: "q", Value: "1"})
	case 18:
		r.Host, r.HostRegex = "h", false
	case 19:
		if r.Host != "" && !r.HostRegex {
			r.Host, r.HostRegex = strings.ReplaceAll(r.Host, ".", `\.`), true
		}
	case 20:
		// Text moved between fields: a key that joined fields with a
		// separator could not tell these apart.
		if len(r.Headers) > 0 && !r.Headers[0].Present {
			r.Headers[0].Value += "1:0"
		}
	default:
		if len(r.Headers) > 0 {
			r.Headers[0].Name += "a"
		}
	}
	return r
}

// TestCriteriaKeyAgreesWithGroups: for random pairs of valid routes, equal
// keys if and only if NewTable accepts the two in one weighted group.
func TestCriteriaKeyAgreesWithGroups(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	equal, differ := 0, 0
	for range 20000 {
		pool := randomRoutes(rng, 10)
		a := pick(rng, pool)
		b := pick(rng, pool) // usually unrelated
		if rng.IntN(5) > 0 {
			b = mutate(rng, a)
		}
		ka, erra := CriteriaKey(&a, nil)
		kb, errb := CriteriaKey(&b, nil)
		if erra != nil {
			t.Fatalf("CriteriaKey(%+v): %v", a, erra)
		}
		if errb != nil {
			continue // a mutation that made the route invalid
		}
		a.ID, a.Group, a.Weight = "a", "g", 50
		b.ID, b.Group, b.Weight = "b", "g", 50
		_, err := NewTable([]Route[string]{a, b}, Options{})
		var ge *GroupError
		if err != nil && !errors.As(err, &ge) {
			t.Fatalf("NewTable(%+v, %+v): %v", a, b, err)
		}
		if (ka == kb) != (err == nil) {
			t.Fatalf("routes %+v and %+v: keys equal = %v, NewTable: %v\n%q\n%q", a, b, ka == kb, err, ka, kb)
		}
		if ka == kb {
			equal++
		} else {
			differ++
		}
	}
	if equal < 2000 || differ < 2000 {
		t.Errorf("%d equal and %d different pairs: the generator is too one-sided", equal, differ)
	}
}

func TestCriteriaKey(t *testing.T) {
	key := func(r Route[string]) string {
		t.Helper()
		k, err := CriteriaKey(&r, nil)
		if err != nil {
			t.Fatalf("CriteriaKey(%+v): %v", r, err)
		}
		return k
	}
	same := [][2]Route[string]{
		{{ID: "a", Host: "API.example.com", Path: "/", Method: "get"}, {ID: "b", Host: "api.example.com", Path: "/", Method: "GET", Tenant: "t", Weight: 3}},
		{{ID: "a", Path: "/", Headers: []HeaderMatch{{Name: "b", Present: true, Value: "x"}, {Name: "A", Value: "1"}}},
			{ID: "a", Path: "/", Headers: []HeaderMatch{{Name: "a", Value: "1"}, {Name: "B", Present: true}}}},
		{{ID: "a", Host: "[::1]", Path: "/"}, {ID: "a", Host: "::1", Path: "/"}},
	}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("%+v and %+v: keys differ", p[0], p[1])
		}
	}
	// Pairs whose texts, joined with a separator, would read alike.
	different := [][2]Route[string]{
		{{ID: "a", Path: "/a", Method: "B"}, {ID: "a", Path: "/aB"}},
		{{ID: "a", Path: "/", Headers: []HeaderMatch{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}},
			{ID: "a", Path: "/", Headers: []HeaderMatch{{Name: "A", Value: "1:0:B2"}}}},
		{{ID: "a", Path: "/", Headers: []HeaderMatch{{Name: "A", Value: "1"}}}, {ID: "a", Path: "/", Query: []QueryMatch{{Name: "A", Value: "1"}}}},
		{{ID: "a", Path: "/", Precedence: 1}, {ID: "a", Path: "/", Precedence: -1}},
		{{ID: "a", Path: "/x", Kind: Exact}, {ID: "a", Path: "/x", Kind: Regex}},
		{{ID: "a", Host: "a.io", Path: "/"}, {ID: "a", Host: `a.io`, HostRegex: true, Path: "/"}},
	}
	for _, p := range different {
		if key(p[0]) == key(p[1]) {
			t.Errorf("%+v and %+v: keys equal", p[0], p[1])
		}
	}
	if _, err := CriteriaKey(&Route[string]{ID: "r", Path: "/", Host: "a.io:80"}, nil); err == nil || !strings.Contains(err.Error(), "remove the port") {
		t.Errorf("CriteriaKey of an invalid route: %v", err)
	}
}

func TestRegexCache(t *testing.T) {
	cache := NewRegexCache()
	build := func(routes ...Route[string]) *Table[string] {
		t.Helper()
		tbl, err := NewTable(routes, Options{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	users := Route[string]{ID: "users", Path: "/users/[0-9]+", Kind: Regex}
	usersFold := Route[string]{ID: "users-i", Path: "/users/[0-9]+", Kind: Regex, CaseInsensitive: true}
	host := Route[string]{ID: "host", Host: "[a-z]+", HostRegex: true, Path: "/"}
	t1 := build(users, host)
	t2 := build(users, usersFold)
	if len(cache.m) != 3 {
		t.Errorf("cache holds %d expressions, want 3 (one per pattern and folding)", len(cache.m))
	}
	// One compiled expression however many tables use it.
	if t1.conds[0].re == nil || t1.conds[0].re != t2.conds[0].re {
		t.Errorf("tables do not share the compiled expression")
	}
	if t2.conds[0].re == t2.conds[1].re {
		t.Errorf("a case-folded pattern shares the case-sensitive expression")
	}
	cache.Sweep() // all three were used since the cache was made
	if len(cache.m) != 3 {
		t.Errorf("after the first Sweep: %d expressions, want 3", len(cache.m))
	}
	t3 := build(users)
	if err := Check([]Route[string]{host}, Options{Cache: cache}); err != nil {
		t.Fatal(err)
	}
	cache.Sweep()
	if _, ok := cache.m[regexKey{"/users/[0-9]+", true}]; ok || len(cache.m) != 2 {
		t.Errorf("after Sweep the cache holds %v, want the two used since the last Sweep", slices.Collect(maps.Keys(cache.m)))
	}
	if t3.conds[0].re != t1.conds[0].re {
		t.Errorf("a kept expression was compiled again")
	}
	// Compile errors are cached too, and reported alike.
	bad := Route[string]{ID: "bad", Path: "(", Kind: Regex}
	_, err1 := NewTable([]Route[string]{bad}, Options{Cache: cache})
	_, err2 := NewTable([]Route[string]{bad}, Options{Cache: cache})
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Errorf("errors %v and %v", err1, err2)
	}
	var zero RegexCache // the zero value is ready to use
	if _, err := NewTable([]Route[string]{users}, Options{Cache: &zero}); err != nil || len(zero.m) != 1 {
		t.Errorf("zero cache: %v, %d expressions", err, len(zero.m))
	}
}
