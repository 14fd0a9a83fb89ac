package auth

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestKeyHasher(t *testing.T) {
	h1, err := NewKeyHasher()
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := NewKeyHasher()
	var zero KeyHasher
	long := strings.Repeat("k", 3*MaxAPIKeyBytes+7) // SumString hashes in chunks
	for _, key := range []string{"", "gh_0123456789abcdef", long} {
		s := h1.Sum([]byte(key))
		if h1.SumString(key) != s || h1.Sum([]byte(key)) != s {
			t.Errorf("%.8q: Sum and SumString differ, or Sum is not stable", key)
		}
		if h2.Sum([]byte(key)) == s || zero.Sum([]byte(key)) == s {
			t.Errorf("%.8q: two hashers agree: their secrets are not their own", key)
		}
		if zero.SumString(key) != zero.Sum([]byte(key)) {
			t.Errorf("%.8q: zero KeyHasher unstable", key)
		}
	}
	if h1.SumString("a") == h1.SumString("b") {
		t.Error("different keys, one sum")
	}
}

func TestKeyHasherAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	h, _ := NewKeyHasher()
	key := "gh_0123456789abcdef0123456789abcdef"
	if n := testing.AllocsPerRun(100, func() { h.SumString(key) }); n != 0 {
		t.Errorf("SumString: %v allocations, want 0", n)
	}
}

func TestAPIKeys(t *testing.T) {
	h, _ := NewKeyHasher()
	table := KeyTable{
		h.SumString("key-alice"): "alice",
		h.SumString("key b/ob"):  "bob",
	}
	long := strings.Repeat("x", MaxAPIKeyBytes+1)
	table[h.SumString(long)] = "long" // even when known, too long is refused

	type want struct {
		consumer string // "" with a status: denied
		status   int
		body     string
	}
	ok := func(c string) want { return want{consumer: c} }
	required := want{status: 401, body: "API key required\n"}
	invalid := want{status: 401, body: "invalid API key\n"}

	for _, tc := range []struct {
		s      APIKeySettings
		header []string // name: value pairs, flattened
		query  string
		want   want
		res    Result // when allowed, without Consumer
	}{
		{APIKeySettings{}, []string{"X-API-Key", "key-alice"}, "", ok("alice"), Result{Remove: []string{"X-Api-Key"}}},
		{APIKeySettings{}, []string{"x-api-key", "key-alice"}, "", ok("alice"), Result{Remove: []string{"X-Api-Key"}}},
		{APIKeySettings{}, nil, "", required, Result{}},
		{APIKeySettings{}, []string{"X-Api-Key", ""}, "", required, Result{}},
		{APIKeySettings{}, []string{"X-Api-Key", "key-alicf"}, "", invalid, Result{}},
		{APIKeySettings{}, []string{"X-Api-Key", "key-alice", "X-Api-Key", "key-alice"}, "", invalid, Result{}},
		{APIKeySettings{}, []string{"X-Api-Key", long}, "", invalid, Result{}},
		{APIKeySettings{}, []string{"Authorization", "key-alice"}, "", required, Result{}},
		{APIKeySettings{Header: "authorization"}, []string{"Authorization", "key-alice"}, "", ok("alice"), Result{Remove: []string{"Authorization"}}},
		{APIKeySettings{Header: "X-Key", ForwardKey: true}, []string{"X-Key", "key b/ob"}, "", ok("bob"), Result{}},
		{APIKeySettings{Query: "api_key"}, nil, "api_key=key-alice&x=1", ok("alice"), Result{RemoveQuery: "api_key"}},
		{APIKeySettings{Query: "api_key"}, nil, "x=1&api%5Fkey=key+b%2Fob", ok("bob"), Result{RemoveQuery: "api_key"}},
		{APIKeySettings{Query: "api_key", ForwardKey: true}, nil, "api_key=key-alice", ok("alice"), Result{}},
		{APIKeySettings{Query: "api_key"}, nil, "api_key=key-alice&api_key=key-alice", invalid, Result{}},
		{APIKeySettings{Query: "api_key"}, nil, "api_key=", required, Result{}},
		{APIKeySettings{Query: "api_key"}, nil, "api_key", required, Result{}},
		{APIKeySettings{Query: "api_key"}, nil, "api_key=%zz", required, Result{}},
		{APIKeySettings{Query: "api_key"}, []string{"X-Api-Key", "key-alice"}, "", required, Result{}},
		{APIKeySettings{Query: "api_key"}, nil, "API_KEY=key-alice", required, Result{}},
		{APIKeySettings{Header: "X-Key", Query: "api_key"}, []string{"X-Key", "key-alice"}, "api_key=nope", ok("alice"), Result{Remove: []string{"X-Key"}}},
	} {
		r, _ := http.NewRequest("GET", "https://app.example/x?"+tc.query, nil)
		for i := 0; i+1 < len(tc.header); i += 2 {
			r.Header.Add(tc.header[i], tc.header[i+1])
		}
		name := tc.query + strings.Join(tc.header, ":")
		if len(name) > 40 {
			name = name[:40]
		}
		res, d := NewAPIKeys(tc.s, h, table).Authenticate(r)
		if tc.want.status == 0 {
			tc.res.Consumer = tc.want.consumer
			if d != nil || !reflect.DeepEqual(res, tc.res) {
				t.Errorf("%+v %q: %+v, %v; want %+v", tc.s, name, res, d, tc.res)
			}
			continue
		}
		if d == nil {
			t.Errorf("%+v %q: accepted as %q", tc.s, name, res.Consumer)
			continue
		}
		if d.Status != tc.want.status || string(d.Body) != tc.want.body || d.Header.Get("WWW-Authenticate") != `ApiKey realm="gatehouse"` {
			t.Errorf("%+v %q: %d %q %q", tc.s, name, d.Status, d.Body, d.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestAPIKeysAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	h, _ := NewKeyHasher()
	a := NewAPIKeys(APIKeySettings{}, h, KeyTable{h.SumString("key-alice"): "alice"})
	good, _ := http.NewRequest("GET", "/", nil)
	good.Header.Set("X-Api-Key", "key-alice")
	bad, _ := http.NewRequest("GET", "/", nil)
	bad.Header.Set("X-Api-Key", "key-mallory")
	for name, r := range map[string]*http.Request{"good": good, "bad": bad} {
		if n := testing.AllocsPerRun(100, func() { a.Authenticate(r) }); n != 0 {
			t.Errorf("%s key: %v allocations, want 0", name, n)
		}
	}
}

func TestAPIKeySettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		s     APIKeySettings
		field string // "" for valid
	}{
		{APIKeySettings{}, ""},
		{APIKeySettings{Header: "X-Key"}, ""},
		{APIKeySettings{Query: "k"}, ""},
		{APIKeySettings{Header: "X-Key", Query: "k"}, "Query"},
		{APIKeySettings{Header: "X Key"}, "Header"},
		{APIKeySettings{Header: "connection"}, "Header"},
	} {
		err := tc.s.Validate()
		var fe *FieldError
		if (tc.field == "") != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != tc.field)) {
			t.Errorf("%+v: Validate = %v, want a problem with %q", tc.s, err, tc.field)
		}
	}
}

// TestQueryParam checks queryParam against url.ParseQuery.
func TestQueryParam(t *testing.T) {
	for _, raw := range []string{
		"", "a", "a=", "a=1", "a=1&a=2", "b=1&a=%41", "a%3D=1", "a=1&&a", "%zz=1&a=2", "a=%zz&a=3",
		"a+b=1", "a%20b=2", "a=x=y", "=a&a=b",
	} {
		checkQueryParam(t, raw, "a")
		checkQueryParam(t, raw, "a b")
	}
}

func checkQueryParam(t *testing.T, raw, name string) {
	t.Helper()
	if strings.Contains(raw, ";") {
		return // ParseQuery refuses ";"; queryParam takes it as a character
	}
	vals, _ := url.ParseQuery(raw)
	got, n := queryParam(raw, name)
	want := vals[name]
	if min(n, 2) != min(len(want), 2) || (n == 1 && got != want[0]) {
		t.Errorf("queryParam(%q, %q) = %q, %d; ParseQuery says %q", raw, name, got, n, want)
	}
}
