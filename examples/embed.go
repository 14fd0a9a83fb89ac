// Package examples ships the quickstart manifests inside the binary, so
// `gatehouse demo` works from any directory.
package examples

import "embed"

// Quickstart holds quickstart/*.yaml.
//
//go:embed quickstart/*.yaml
var Quickstart embed.FS

// Try is one request worth trying against the quickstart.
type Try struct {
	What string
	// Curl is the curl command line after "curl -s", with GATEWAY standing
	// for the gateway's base URL.
	Curl string
}

// QuickstartTries shows each feature the quickstart configures.
func QuickstartTries() []Try {
	return []Try{
		{"prefix route, rewritten /users/42 → /42, round-robin over two replicas", "GATEWAY/users/42"},
		{"header route to the canary", "-H 'x-canary: true' GATEWAY/users/42"},
		{"host route with rewrite to /v1/orders/7", "-H 'Host: shop.example.com' GATEWAY/orders/7"},
		{"regex route (precedence 10), path kept", "-H 'Host: shop.example.com' GATEWAY/orders/7/receipt"},
		{"exact route rewritten to /healthz", "GATEWAY/status"},
		{"no route: 404", "-i GATEWAY/nothing-here"},
		{"rate limit: 10 burst, 5/s per client, then 429 with Retry-After", "-o /dev/null -w '%{http_code}\\n' GATEWAY/users/[1-15]"},
	}
}
