package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/gatehouse-dev/gatehouse/annotations"
	"github.com/gatehouse-dev/gatehouse/snapshot"
)

func drain(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestRecordEvents(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	typo := annotations.Problems{{Pos: annotations.Position{Line: 3, Column: 1}, Path: `Mapping "web".prefx`, Message: `unknown field "prefx" (did you mean "prefix"?)`}}
	other := annotations.Problems{{Pos: annotations.Position{Line: 2, Column: 7}, Path: `Mapping "web".prefix`, Message: "must start with /"}}
	bad := func(ps annotations.Problems) []snapshot.Report {
		return []snapshot.Report{{Service: "shop/web", Annotation: ourKey, Problems: ps, Rejected: true, ServingLastGood: true}}
	}
	good := []snapshot.Report{{Service: "shop/web", Annotation: ourKey}}
	svc := func(text string) []*corev1.Service {
		if text == "" {
			return nil // deleted
		}
		return []*corev1.Service{service("1", map[string]string{ourKey: text}, 80)}
	}
	typoEvent := `Warning InvalidConfig line 3, column 1: Mapping "web".prefx: unknown field "prefx" (did you mean "prefix"?)`
	steps := []struct {
		name     string
		text     string // the annotation; "" deletes the Service
		reports  []snapshot.Report
		observed bool // a change to the Service was seen 7 ms before the Apply
		want     []string
	}{
		{"start: no Programmed for what was already there", "v1", good, true, nil},
		{"accepted change", "v2", good, true, []string{"Normal Programmed routes programmed in 7 ms after the change was observed"}},
		{"unrelated rebuild", "v2", nil, false, nil},
		{"rejected change", "v3", bad(typo), true, []string{typoEvent}},
		{"still rejected: no storm", "v3", bad(typo), false, nil},
		{"another edit, same problem", "v3b", bad(typo), true, nil},
		{"different problem", "v4", bad(other), true, []string{`Warning InvalidConfig line 2, column 7: Mapping "web".prefix: must start with /`}},
		{"fixed", "v5", good, true, []string{"Normal Programmed routes programmed in 7 ms after the change was observed"}},
		{"broken again with the first problem", "v6", bad(typo), true, []string{typoEvent}},
		{"deleted", "", nil, true, nil},
		{"recreated broken: warned afresh", "v3", bad(typo), true, []string{typoEvent}},
	}
	rec := record.NewFakeRecorder(10)
	s := New(Config{Keys: []string{ourKey}, Recorder: rec})
	for _, st := range steps {
		observed := map[string]time.Time{}
		if st.observed {
			observed["shop/web"] = t0.Add(-7 * time.Millisecond)
		}
		s.recordEvents(svc(st.text), st.reports, observed, t0)
		if got := drain(rec); strings.Join(got, "\n") != strings.Join(st.want, "\n") {
			t.Errorf("%s: events\n%q\nwant\n%q", st.name, got, st.want)
		}
	}
}

func TestProblemText(t *testing.T) {
	p := annotations.Problem{Pos: annotations.Position{Line: 1, Column: 1}, Path: "document 1", Message: strings.Repeat("é", 40)}
	many := make(annotations.Problems, 30)
	for i := range many {
		many[i] = p
	}
	cases := []struct {
		name    string
		reports []snapshot.Report
		want    string
	}{
		{"one annotation", []snapshot.Report{{Annotation: ourKey, Problems: annotations.Problems{p, {Pos: annotations.Position{Line: 2, Column: 3}, Message: "m", Warning: true}}}},
			"line 1, column 1: document 1: " + strings.Repeat("é", 40) + "\nline 2, column 3: warning: m"},
		{"two annotations name theirs", []snapshot.Report{{Annotation: ourKey, Problems: annotations.Problems{p}}, {Annotation: "getambassador.io/config"}},
			ourKey + ": line 1, column 1: document 1: " + strings.Repeat("é", 40)},
		{"no problems listed", []snapshot.Report{{Annotation: ourKey}}, "configuration rejected"},
	}
	for _, c := range cases {
		if got := problemText(c.reports); got != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, got, c.want)
		}
	}

	got := problemText([]snapshot.Report{{Annotation: ourKey, Problems: many}})
	if len(got) > maxMessage || !strings.HasSuffix(got, "\n… (truncated)") || !strings.HasPrefix(got, "line 1, column 1: document 1: éé") {
		t.Errorf("long message: %d bytes, ends %q", len(got), got[max(0, len(got)-30):])
	}
	if !strings.HasPrefix(strings.TrimSuffix(got, "\n… (truncated)"), strings.Repeat(p.Error()+"\n", 8)) {
		t.Errorf("truncation lost whole lines it had room for")
	}
	for i, r := range got {
		if r == '\uFFFD' {
			t.Fatalf("truncation split a character at byte %d", i)
		}
	}
}
