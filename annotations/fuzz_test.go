package annotations

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fuzzSeeds are valid and invalid annotations covering each kind of problem.
var fuzzSeeds = []string{
	"",
	"---",
	mapping,
	rateLimit,
	mapping + "rate_limits: [per-ip]\n---\n" + rateLimit,
	"kind: Mapping\nname: users\nprefx: /u\nservice: 8080\nprecedence: high\n",
	"kind: mapping\nname: Users\nheaders:\n  x-a: false\n  X-A: 1\n",
	"kind: Mapping\nname: a\nprefix: '^/(?=x)\\1'\nprefix_regex: true\nprefix_exact: true\nservice: http://a.b.c.d:0/x\nhost: Foo*.com:80\nmethod: \"GE T\"\n",
	"kind: RateLimit\nname: r\nrate: 0\nunit: week\nburst: 0\nkey: client_ip\nheader: x\n",
	"a: &a [1]\nb: *a\n",
	"a: *b\n",
	"kind: Mapping\nheaders:\n\tx: y\n",
	"a:\n  b: 1\n c: 2\n",
	"a: [1,\nb: \"x\n",
	"a: 1\r\nb: 2\r c: 3",
	"x: \x01\xff\u2028y: 1\u0085",
	"\ufeffkind: Mapping\n\tname: x\n",
	"- a\n---\nnull\n---\n~\n",
	"%YAML 1.2\n---\na: 1\n...\n",
	"? [a]\n: b\n",
	"kind: Mapping\nname: a\nprefix: /\nservice: s\nrate_limits: [a, a, b]\n---\nkind: RateLimit\nname: a\nrate: 1\nunit: day\n---\nkind: Mapping\nname: a\n",
}

// yamlLineCount counts lines as generously as any YAML reader could: every
// CR, LF, NEL, LS and PS starts a new line.
func yamlLineCount(s string) int {
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', 0x85, 0x2028, 0x2029:
			n++
		}
	}
	return n
}

func FuzzParse(f *testing.F) {
	f.Add(readRealistic(f))
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, problems := Parse(src, Options{Namespace: "ns"})
		if (cfg == nil) != problems.HasErrors() {
			t.Fatalf("config %v with problems %v", cfg, problems)
		}
		lines := yamlLineCount(src)
		for _, p := range problems {
			if p.Pos.Line < 1 || p.Pos.Column < 1 || p.Pos.Line > lines+1 {
				t.Errorf("position out of range (%d lines): %v", lines, p)
			}
			if p.Message == "" {
				t.Errorf("empty message: %#v", p)
			}
		}
		if !slices.IsSortedFunc(problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
		}) {
			t.Errorf("problems not sorted: %v", problems)
		}
		if cfg2, problems2 := Parse(src, Options{Namespace: "ns"}); !reflect.DeepEqual(problems, problems2) || !reflect.DeepEqual(cfg, cfg2) {
			t.Errorf("Parse is not deterministic:\n%v\n%v", problems, problems2)
		}
		if cfg != nil {
			checkConfigInvariants(t, cfg)
		}
	})
}

// checkConfigInvariants asserts what a compiler may rely on in a Config.
func checkConfigInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	var rateLimits []string
	for _, rl := range cfg.RateLimits {
		if dnsLabelProblem(rl.Name) != "" || rl.Rate < 1 || !slices.Contains([]string{UnitSecond, UnitMinute, UnitHour, UnitDay}, rl.Unit) {
			t.Errorf("invalid RateLimit accepted: %+v", rl)
		}
		rateLimits = append(rateLimits, rl.Name)
	}
	for _, m := range cfg.Mappings {
		if dnsLabelProblem(m.Name) != "" || m.Prefix == "" || m.Host != strings.ToLower(m.Host) || m.Method != strings.ToUpper(m.Method) {
			t.Errorf("invalid Mapping accepted: %+v", m)
		}
		if _, err := ParseServiceRef(m.Service, "ns"); err != nil {
			t.Errorf("Mapping with bad service accepted: %v", err)
		}
		for _, name := range m.RateLimits {
			if !slices.Contains(rateLimits, name) {
				t.Errorf("Mapping %q refers to undeclared RateLimit %q", m.Name, name)
			}
		}
	}
}

func FuzzParseServiceRef(f *testing.F) {
	for _, s := range []string{"users", "users.shop:8080", "https://u.n.svc.cluster.local", "http://u/x", "u:0", "U", ":", "://", "a.b.c"} {
		f.Add(s, "ns")
	}
	f.Fuzz(func(t *testing.T, s, ns string) {
		ref, err := ParseServiceRef(s, ns)
		if err != nil {
			if ref != (ServiceRef{}) || !strings.HasPrefix(err.Error(), "parsing service reference ") {
				t.Fatalf("error %v with ref %+v", err, ref)
			}
			return
		}
		if ref.Scheme != "http" && ref.Scheme != "https" || ref.Port < 1 || ref.Port > 65535 || dnsLabelProblem(ref.Name) != "" {
			t.Fatalf("ParseServiceRef(%q) = %+v", s, ref)
		}
		if ref.Namespace != ns && dnsLabelProblem(ref.Namespace) != "" {
			t.Fatalf("ParseServiceRef(%q) namespace %q", s, ref.Namespace)
		}
		if dnsLabelProblem(ref.Namespace) == "" || ref.Namespace == "" {
			again, err := ParseServiceRef(ref.String(), "")
			if err != nil || again != ref {
				t.Fatalf("round trip of %+v through %q: %+v, %v", ref, ref.String(), again, err)
			}
		}
	})
}
