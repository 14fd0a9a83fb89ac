package metrics

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestConsumersBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := NewConsumers(reg)
	for i := range MaxConsumers + 500 {
		c.Record("shop", fmt.Sprintf("c%d", i), 200, 10)
	}
	c.Record("shop", "c0", 404, 5)
	c.Record("shop", "", 200, 1) // no consumer: not counted
	c.Record("blog", "late", 503, 0)
	usage := c.Usage()
	// MaxConsumers by name, then _other_ per namespace.
	if len(usage) != MaxConsumers+2 {
		t.Fatalf("%d consumers tracked, want %d", len(usage), MaxConsumers+2)
	}
	byName := map[string]ConsumerUsage{}
	for _, u := range usage {
		byName[u.Namespace+"/"+u.Consumer] = u
	}
	if o := byName["shop/"+OtherConsumer]; o.Requests != 500 || o.Bytes != 5000 {
		t.Errorf("shop/_other_: %+v, want the 500 consumers past the bound", o)
	}
	if u := byName["shop/c0"]; u.Requests != 2 || u.Classes["2xx"] != 1 || u.Classes["4xx"] != 1 || u.Bytes != 15 {
		t.Errorf("shop/c0: %+v", u)
	}
	if u := byName["blog/"+OtherConsumer]; u.Classes["5xx"] != 1 {
		t.Errorf("blog/_other_: %+v", u)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "gatehouse_consumer_requests_total" {
			continue
		}
		// One series per consumer and class seen: the bound holds.
		if n := len(f.GetMetric()); n != MaxConsumers+3 {
			t.Errorf("%d series, want %d (1,000 consumers with 2xx, c0's 4xx, two _other_)", n, MaxConsumers+3)
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["consumer"] == "c0" && labels["class"] == "4xx" && m.GetCounter().GetValue() != 1 {
				t.Errorf("c0's 4xx series: %v", m.GetCounter().GetValue())
			}
		}
	}
	var nilC *Consumers
	nilC.Record("x", "y", 200, 1) // no table: no panic
}

func BenchmarkConsumersRecord(b *testing.B) {
	c := NewConsumers(nil)
	c.Record("shop", "alice", 200, 1)
	b.ReportAllocs()
	for b.Loop() {
		c.Record("shop", "alice", 200, 128)
	}
}
