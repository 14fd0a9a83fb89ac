package metrics

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxConsumers bounds the consumers whose usage is counted by name: the
// label values of the consumer series, and the memory of the table. A
// consumer first seen when the table is full is counted under
// OtherConsumer, in its namespace, so no request goes uncounted and no
// client can grow the table (consumers are names authentication vouched
// for, but a tenant can list thousands of API keys).
const MaxConsumers = 1000

// OtherConsumer is the name usage is counted under once MaxConsumers
// consumers are.
const OtherConsumer = "_other_"

// Consumers counts what each authenticated consumer used: requests by
// status class and response bytes. Safe for concurrent use; Record is on
// the request path and allocates only the first time a consumer is seen.
type Consumers struct {
	mu    sync.RWMutex
	table map[consumerKey]*consumerUsage
	descs [2]*prometheus.Desc
}

type consumerKey struct{ namespace, name string }

type consumerUsage struct {
	classes [5]atomic.Uint64 // 1xx … 5xx
	bytes   atomic.Uint64
}

// ConsumerUsage is one consumer's usage so far.
type ConsumerUsage struct {
	Namespace string            `json:"namespace"`
	Consumer  string            `json:"consumer"`
	Requests  uint64            `json:"requests"`
	Classes   map[string]uint64 `json:"status_classes"` // "2xx" → count
	Bytes     uint64            `json:"response_bytes"`
}

// NewConsumers returns an empty table whose series reg collects.
func NewConsumers(reg prometheus.Registerer) *Consumers {
	c := &Consumers{
		table: map[consumerKey]*consumerUsage{},
		descs: [2]*prometheus.Desc{
			prometheus.NewDesc("gatehouse_consumer_requests_total",
				"Requests of authenticated consumers, by the namespace of the route, the consumer (at most 1,000 by name; the rest as _other_) and the answer's status class.",
				[]string{"namespace", "consumer", "class"}, nil),
			prometheus.NewDesc("gatehouse_consumer_response_bytes_total",
				"Response body bytes sent to authenticated consumers, labelled as gatehouse_consumer_requests_total.",
				[]string{"namespace", "consumer"}, nil),
		},
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// Record counts one request of consumer (in namespace) answered with
// status and bytes of body.
func (c *Consumers) Record(namespace, consumer string, status int, bytes int64) {
	if c == nil || consumer == "" {
		return
	}
	k := consumerKey{namespace, consumer}
	c.mu.RLock()
	u := c.table[k]
	c.mu.RUnlock()
	if u == nil {
		u = c.add(k)
	}
	if class := status/100 - 1; class >= 0 && class < len(u.classes) {
		u.classes[class].Add(1)
	}
	if bytes > 0 {
		u.bytes.Add(uint64(bytes))
	}
}

func (c *Consumers) add(k consumerKey) *consumerUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.table[k]; u != nil {
		return u
	}
	if len(c.table) >= MaxConsumers {
		k.name = OtherConsumer
		if u := c.table[k]; u != nil {
			return u
		}
		// One _other_ per namespace may pass the bound: there are as many
		// as namespaces with consumers, which tenants do not create.
	}
	u := new(consumerUsage)
	c.table[k] = u
	return u
}

// Usage lists every consumer's usage, by namespace and name.
func (c *Consumers) Usage() []ConsumerUsage {
	c.mu.RLock()
	out := make([]ConsumerUsage, 0, len(c.table))
	for k, u := range c.table {
		cu := ConsumerUsage{Namespace: k.namespace, Consumer: k.name, Classes: map[string]uint64{}, Bytes: u.bytes.Load()}
		for i := range u.classes {
			if n := u.classes[i].Load(); n > 0 {
				cu.Classes[strconv.Itoa(i+1)+"xx"] = n
				cu.Requests += n
			}
		}
		out = append(out, cu)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b ConsumerUsage) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Consumer, b.Consumer))
	})
	return out
}

// Describe and Collect make Consumers a prometheus.Collector.
func (c *Consumers) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *Consumers) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.Usage() {
		for class, n := range u.Classes {
			ch <- prometheus.MustNewConstMetric(c.descs[0], prometheus.CounterValue, float64(n), u.Namespace, u.Consumer, class)
		}
		ch <- prometheus.MustNewConstMetric(c.descs[1], prometheus.CounterValue, float64(u.Bytes), u.Namespace, u.Consumer)
	}
}
