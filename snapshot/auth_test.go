package snapshot

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestAuthBudget(t *testing.T) {
	var docs []string
	for i := range 3 {
		docs = append(docs, fmt.Sprintf("kind: Auth\nname: a%d\napi_key:\n  secrets: [k]\n", i))
	}
	b := newBuilderWith(Options{Budgets: Budgets{MaxAuths: 2}})
	_, reports := build(t, b, Input{Services: []*corev1.Service{service("a", "many", strings.Join(docs, "---\n"))}})
	found := false
	for _, r := range reports {
		for _, p := range r.Problems {
			found = found || strings.Contains(p.Message, "more than 2, the platform's --max-auths-per-service")
		}
	}
	if !found {
		t.Errorf("three Auths with a budget of two: %+v", reports)
	}
}
