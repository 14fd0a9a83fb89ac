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
		{"users", ServiceRef{"http", "users", "shop", 80}},
		{"users:8080", ServiceRef{"http", "users", "shop", 8080}},
		{"users.billing", ServiceRef{"http", "users", "billing", 80}},
		{"https://users", ServiceRef{"https", "users", "shop", 443}},
		{"HTTPS://users.billing:8443", ServiceRef{"https", "users", "billing", 8443}},
		{"http://users.billing.svc:81", ServiceRef{"http", "users", "billing", 81}},
		{"users.billing.svc.cluster.local", ServiceRef{"http", "users", "billing", 80}},
		{"u-1.n-2:65535", ServiceRef{"http", "u-1", "n-2", 65535}},
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
		{"[::1]:80", "more than one ':'"},
		{"users.billing.cluster", "is not a Service name"},
		{"10.0.0.1", "is not a Service name"},
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
		{ServiceRef{"http", "users", "shop", 80}, "http://users.shop:80"},
		{ServiceRef{"https", "users", "", 443}, "https://users:443"},
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
