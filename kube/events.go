package kube

import (
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// Event reasons. They are API: people filter on them (kubectl get events
// --field-selector reason=InvalidConfig) and alerts match them.
const (
	// ReasonInvalidConfig (Warning): the Service's annotations were
	// rejected; it keeps serving its last good routes, if it had any.
	ReasonInvalidConfig = "InvalidConfig"
	// ReasonProgrammed (Normal): a changed annotation now serves traffic.
	ReasonProgrammed = "Programmed"
	// ReasonCertificateNotServed (Warning): a Host's Secret does not hold
	// a usable certificate (or client CAs); the host keeps its last good
	// one, or has none. The Service's routes are unaffected.
	ReasonCertificateNotServed = "CertificateNotServed"
	// ReasonAuthSecretNotUsable (Warning): a Secret an Auth document
	// names (a JWKS, API keys) is missing or unusable; the Auth refuses
	// the credentials it would have checked.
	ReasonAuthSecretNotUsable = "AuthSecretNotUsable"
	// ReasonInvalidAnnotation (Warning, on a Namespace): a grant,
	// delegation or allowed-hosts annotation does not parse, so it grants,
	// delegates or allows nothing.
	ReasonInvalidAnnotation = "InvalidAnnotation"
)

// recordNamespaceWarnings records a Warning on each Namespace whose
// annotations the builder reads as nothing because they do not parse
// (failing closed), once per distinct text: a platform team would
// otherwise learn of its typo only from tenants' refusals.
func (s *Source) recordNamespaceWarnings(namespaces []*corev1.Namespace) {
	seen := map[string]bool{}
	for _, ns := range namespaces {
		st := snapshot.ReadNamespaceSettings(ns)
		if st == nil || len(st.Problems) == 0 {
			continue
		}
		seen[ns.Name] = true
		msg := strings.Join(st.Problems, "\n")
		if s.nsWarned[ns.Name] == msg {
			continue
		}
		s.nsWarned[ns.Name] = msg
		s.log.Warn("Namespace annotation does not parse", "namespace", ns.Name, "problems", msg)
		s.recorder.Event(ns, corev1.EventTypeWarning, ReasonInvalidAnnotation, msg)
	}
	for name := range s.nsWarned {
		if !seen[name] {
			delete(s.nsWarned, name)
		}
	}
}

// Component is the source Events are recorded under.
const Component = "gatehouse"

// maxMessage bounds an Event's message: events.k8s.io rejects notes over
// 1 KiB, and an annotation with hundreds of mistakes helps nobody in
// kubectl describe beyond the first few.
const maxMessage = 1024

// Recorder is where Events go: an EventRecorder, or in tests client-go's
// record.FakeRecorder, whose method this is.
type Recorder interface {
	Event(object runtime.Object, eventtype, reason, message string)
}

var _ Recorder = (*EventRecorder)(nil)

type discard struct{}

func (discard) Event(runtime.Object, string, string, string) {}

// recordEvents tells Service owners what became of their annotations after
// an Apply: a Warning when the annotations were rejected (once per distinct
// problem text, so a Service that stays broken across many rebuilds does
// not flood its Events), a Normal Event when a change was accepted and
// published. services are the Services applied (sorted by key); observed
// says when a change to each was first seen.
//
// The first Apply after start records no Programmed Events: nothing changed,
// the gateway merely started. Warnings are recorded then, since a restarted
// gateway must still say what it refuses to serve.
func (s *Source) recordEvents(services []*corev1.Service, reports []snapshot.Report, observed map[string]time.Time, now time.Time) {
	byService := map[string][]snapshot.Report{}
	certs := map[string][]snapshot.Report{}
	authSecrets := map[string][]snapshot.Report{}
	for _, r := range reports {
		if r.Certificates {
			certs[r.Service] = append(certs[r.Service], r)
			continue
		}
		if r.AuthSecrets {
			authSecrets[r.Service] = append(authSecrets[r.Service], r)
			continue
		}
		byService[r.Service] = append(byService[r.Service], r)
	}
	first := s.applied == nil
	applied := map[string][sha256.Size]byte{}
	for _, svc := range services {
		ours := s.ours(svc.Annotations)
		if ours == nil {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		applied[key] = fingerprint(ours)
		s.recordSecretWarnings(svc, key, certs[key], s.certWarned, ReasonCertificateNotServed, "certificate not served")
		s.recordSecretWarnings(svc, key, authSecrets[key], s.authWarned, ReasonAuthSecretNotUsable, "auth Secret not usable")
		rs := byService[key]
		if rejected(rs) {
			msg := problemText(rs)
			if old, ok := s.warned[key]; ok && old == msg {
				continue
			}
			s.warned[key] = msg
			// Logged here rather than per build so that a Service that stays
			// broken is logged once, like its Event.
			if servingLastGood(rs) {
				s.log.Warn("annotations rejected; serving the last good routes", "service", key, "problems", msg)
			} else {
				s.log.Warn("annotations rejected; the Service has no routes", "service", key, "problems", msg)
			}
			s.recorder.Event(svc, corev1.EventTypeWarning, ReasonInvalidConfig, msg)
			continue
		}
		_, recovered := s.warned[key]
		changed := s.applied[key] != applied[key]
		delete(s.warned, key)
		if first || !(changed || recovered) {
			continue
		}
		msg := "routes programmed after the change was observed"
		if t, ok := observed[key]; ok {
			msg = fmt.Sprintf("routes programmed in %d ms after the change was observed", now.Sub(t).Milliseconds())
		}
		s.recorder.Event(svc, corev1.EventTypeNormal, ReasonProgrammed, msg)
	}
	for key := range s.warned {
		if _, ok := applied[key]; !ok {
			delete(s.warned, key) // deleted, or no longer annotated
		}
	}
	for _, m := range []map[string]string{s.certWarned, s.authWarned} {
		for key := range m {
			if _, ok := applied[key]; !ok {
				delete(m, key)
			}
		}
	}
	s.applied = applied
}

// recordSecretWarnings records a Warning with reason when the Service's
// Hosts or Auths cannot use their Secrets as they are, once per distinct
// text (warned remembers it), as rejections are recorded.
func (s *Source) recordSecretWarnings(svc *corev1.Service, key string, rs []snapshot.Report, warned map[string]string, reason, what string) {
	if len(rs) == 0 {
		delete(warned, key)
		return
	}
	msg := problemText(rs)
	if warned[key] == msg {
		return
	}
	warned[key] = msg
	s.log.Warn(what, "service", key, "problems", msg)
	s.recorder.Event(svc, corev1.EventTypeWarning, reason, msg)
}

func rejected(rs []snapshot.Report) bool {
	for _, r := range rs {
		if r.Rejected {
			return true
		}
	}
	return false
}

func servingLastGood(rs []snapshot.Report) bool {
	for _, r := range rs {
		if r.ServingLastGood {
			return true
		}
	}
	return false
}

// problemText lists the problems one per line, in the words the webhook and
// the CLI use (`line 4, column 3: Mapping "users".prefx: unknown field …`),
// so a message in kubectl describe can be searched for in the docs. With
// more than one annotation read, each line names its annotation.
func problemText(rs []snapshot.Report) string {
	var b strings.Builder
	for _, r := range rs {
		for _, p := range r.Problems {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			if len(rs) > 1 {
				b.WriteString(r.Annotation)
				b.WriteString(": ")
			}
			b.WriteString(p.Error())
		}
	}
	if b.Len() == 0 {
		return "configuration rejected"
	}
	return truncate(b.String(), maxMessage)
}

// truncate cuts s to at most n bytes, on a character boundary, and says so.
func truncate(s string, n int) string {
	const more = "\n… (truncated)"
	if len(s) <= n {
		return s
	}
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// fingerprint condenses a Service's annotations into a hash, so telling a
// change costs 32 bytes per Service rather than a second copy of the text
// the builder already keeps.
func fingerprint(ours map[string]string) [sha256.Size]byte {
	keys := make([]string, 0, len(ours))
	for k := range ours {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		// Lengths first, so no two different maps hash the same input.
		fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(ours[k]))
		io.WriteString(h, ours[k])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
