package annotations

import (
	"strings"
	"testing"
)

func TestParseServiceRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ServiceRef
	}{
		{"users", ServiceRef{Scheme: "http", Name: "users", Namespace: "shop", Host: "users", Port: 80}},
		{"users:8080", ServiceRef{Scheme: "http", Name: "users", Namespace: "shop", Host: "users", Port: 8080}},
		{"users.billing", ServiceRef{Scheme: "http", Name: "users", Namespace: "billing", Host: "users.billing", Port: 80}},
		{"https://users", ServiceRef{Scheme: "https", Name: "users", Namespace: "shop", Host: "users", Port: 443}},
		{"HTTPS://users.billing:8443", ServiceRef{Scheme: "https", Name: "users", Namespace: "billing", Host: "users.billing", Port: 8443}},
		{"http://users.billing.svc:81", ServiceRef{Scheme: "http", Name: "users", Namespace: "billing", Host: "users.billing.svc", Port: 81}},
		{"users.billing.svc.cluster.local", ServiceRef{Scheme: "http", Name: "users", Namespace: "billing", Host: "users.billing.svc.cluster.local", Port: 80}},
		{"u-1.n-2:65535", ServiceRef{Scheme: "http", Name: "u-1", Namespace: "n-2", Host: "u-1.n-2", Port: 65535}},
		// Hosts that can only be outside the cluster.
		{"api.Example.com", ServiceRef{Scheme: "http", Host: "api.example.com", Port: 80}},
		{"https://api.example.com.", ServiceRef{Scheme: "https", Host: "api.example.com", Port: 443}},
		{"10.0.0.1:8080", ServiceRef{Scheme: "http", Host: "10.0.0.1", Port: 8080}},
		{"[::1]:80", ServiceRef{Scheme: "http", Host: "::1", Port: 80}},
		{"[2001:DB8::1]", ServiceRef{Scheme: "http", Host: "2001:db8::1", Port: 80}},
		{"users.billing.cluster", ServiceRef{Scheme: "http", Host: "users.billing.cluster", Port: 80}},
	} {
		got, err := ParseServiceRef(tc.in, "shop")
		if err != nil || got != tc.want {
			t.Errorf("ParseServiceRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseServiceRefErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty"},
		{"grpc://users", `unsupported scheme "grpc"`},
		{"http://users/api", "a path, query or fragment is not allowed"},
		{"users?x=1", "a path, query or fragment is not allowed"},
		{"admin:secret@users", "user information is not allowed"},
		{"users:0", "port 0 is out of range 1-65535"},
		{"users:65536", "port 65536 is out of range"},
		{"users:+80", `port "+80" is not a number`},
		{"users:", "empty port"},
		{"users:80:81", "more than one ':'"},
		{"::1", "more than one ':'"},
		{"[::1", "missing ']'"},
		{"[::1]x", `unexpected "x"`},
		{"[fe80::1%eth0]", "is not an IP address"},
		{"10.0.0.256", "is not an IP address"},
		{"a.b_c.example.com", `contains '_'`},
		{"Users", `name "Users" must be lowercase`},
		{"users.Billing", `namespace "Billing" must be lowercase`},
		{"users_1", `contains '_'`},
		{"-users", "must start and end with a letter or digit"},
		{"users ", "whitespace"},
		{"users.", "namespace \"\" must not be empty"},
	} {
		_, err := ParseServiceRef(tc.in, "shop")
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "parsing service reference ") {
			t.Errorf("ParseServiceRef(%q) error = %v; want one containing %q", tc.in, err, tc.msg)
		}
	}
}

func TestServiceRefString(t *testing.T) {
	for _, tc := range []struct {
		ref  ServiceRef
		want string
	}{
		{ServiceRef{Scheme: "http", Name: "users", Namespace: "shop", Host: "users.shop", Port: 80}, "http://users.shop:80"},
		{ServiceRef{Scheme: "https", Name: "users", Namespace: "", Host: "users", Port: 443}, "https://users:443"},
		{ServiceRef{Scheme: "http", Host: "api.example.com", Port: 8080}, "http://api.example.com:8080"},
		{ServiceRef{Scheme: "http", Host: "2001:db8::1", Port: 80}, "http://[2001:db8::1]:80"},
	} {
		if got := tc.ref.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.ref, got, tc.want)
		}
	}
	// Without a default namespace a bare name stays unqualified.
	if ref, err := ParseServiceRef("users", ""); err != nil || ref.Namespace != "" || ref.String() != "http://users:80" {
		t.Errorf("ParseServiceRef(users, \"\") = %+v, %v", ref, err)
	}
}
