package annotations

import (
	"strings"
	"testing"
)

func TestParseSyntaxErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []wantProblem
	}{
		// The YAML library would say "line 3" (where the mapping started).
		{"dedented key", "kind: Mapping\nheaders:\n  a: b\n c: d\n", []wantProblem{{4, 2, "", "did not find expected key", false}}},
		{"unclosed flow", "kind: Mapping\nrate_limits: [a, b\nname: x\n", []wantProblem{{2, 1, "", "did not find expected ',' or ']'", false}}},
		{"unclosed quote", "kind: Mapping\nname: \"users\nprefix: /\n", []wantProblem{{2, 1, "", "found unexpected end of stream", false}}},
		{"over-indented key", "kind: Mapping\nname: users\n  prefix: /\n", []wantProblem{{3, 3, "", "mapping values are not allowed in this context", false}}},
		{"two colons", "kind: Mapping\nname: a: b\n", []wantProblem{{2, 1, "", "mapping values are not allowed in this context", false}}},
		{"first line", "a: b: c\n", []wantProblem{{1, 1, "", "mapping values are not allowed in this context", false}}},
		{"reserved character", "kind: Mapping\nname: @users\n", []wantProblem{{2, 7, "", "found character that cannot start any token", false}}},
		{"list in mapping", "kind: Mapping\nname: x\n- a\n", []wantProblem{{3, 1, "", "did not find expected key", false}}},
		{"crlf", "kind: Mapping\r\nname: users\r\n  prefix: /\r\n", []wantProblem{{3, 3, "", "mapping values are not allowed", false}}},

		// Tabs.
		{"tab indentation", "kind: Mapping\nheaders:\n\tx-env: prod\n", []wantProblem{
			{3, 1, "", "tab character used for indentation; YAML allows only spaces", false}}},
		{"tab after spaces", "kind: Mapping\nheaders:\n  a: b\n  \tc: d\n", []wantProblem{
			{4, 3, "", "tab character used for indentation; YAML allows only spaces", false}}},
		{"tab reported a line early", "a:\n  b: 1\n\tc: 2\n", []wantProblem{{3, 1, "", "tab character used for indentation; YAML allows only spaces", false}}},
		{"tab-only line", "a: 1\n\t\nb: 2\n", []wantProblem{{2, 1, "", "tab character used for indentation", false}}},
		{"tab as separator is fine", "kind: Mapping\nname:\tusers\nprefix: /\nservice: s\n", nil},

		{"byte order mark", "\ufeffkind: Mapping\n\tname: x\n", []wantProblem{{2, 1, "", "tab character used for indentation", false}}},
		{"byte order mark and bad character", "\ufeffa: \x01\n", []wantProblem{{1, 4, "", "character U+0001", false}}},

		// Earlier documents are still checked; later ones are not read.
		{"error in second document", mapping + "prefx: 1\n---\nkind: Mapping\nname: b\nprefix: [\n---\nkind: Route\n", []wantProblem{
			{5, 1, users + ".prefx", "unknown field", false},
			{10, 1, "", "did not find expected node content", false}}},
		{"reference into unread documents", mapping + "rate_limits: [per-ip]\n---\nkind: [\n---\n" + rateLimit, []wantProblem{
			{8, 1, "", "did not find expected node content", false}}},
		{"error after empty documents", "---\n---\nkind: Mapping\nheaders:\n  a: b\n c: d\n", []wantProblem{{6, 2, "", "did not find expected key", false}}},

		// Characters the YAML library rejects without a position.
		{"control character", mapping + "host: a\x01b\n", []wantProblem{{5, 8, "", "character U+0001 is not allowed in YAML", false}}},
		{"invalid utf-8", mapping + "---\nkind: Mapping\nname: \xff\n", []wantProblem{
			{7, 7, "", "invalid UTF-8 byte 0xFF", false}}},
		{"bad character after a bad document", mapping + "prefx: 1\n---\nname: é\x00\n", []wantProblem{
			{5, 1, users + ".prefx", "unknown field", false},
			{7, 8, "", "character U+0000", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, tc.src, tc.want...)
		})
	}
}

func TestParseLimits(t *testing.T) {
	big := strings.Repeat("# padding\n", maxBytes/10+1)
	checkProblems(t, big, wantProblem{1, 1, "", "at most 262144 (256 KiB) are allowed", false})

	var b strings.Builder
	for range maxDocuments + 5 {
		b.WriteString("---\nkind: RateLimit\nname: a\nrate: 1\nunit: day\n")
	}
	_, problems := Parse(b.String(), Options{})
	last := problems[len(problems)-1]
	if want := (Position{Line: 5*maxDocuments + 2, Column: 1}); last.Pos != want || !strings.Contains(last.Message, "more than 1000 documents") {
		t.Errorf("last problem %v, want the document limit at %v", last, want)
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Expanded, this is 9^9 strings; refused before anything expands it.
	src := mapping + "x: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	for i, prev := 'b', 'a'; i <= 'i'; i, prev = i+1, i {
		src += "x" + string(i) + ": &" + string(i) + " [" + strings.Repeat("*"+string(prev)+",", 8) + "*" + string(prev) + "]\n"
	}
	checkProblems(t, src, wantProblem{5, 4, users, "YAML anchors (&a) are not supported", false})
}

// BenchmarkParseSyntaxError measures the re-parsing that locates a syntax
// error: a 200-line mapping whose last key is indented one space short.
func BenchmarkParseSyntaxError(b *testing.B) {
	src := "kind: Mapping\nheaders:\n" + strings.Repeat("  x-a: b\n", 200) + " c: d\n"
	b.ReportAllocs()
	for b.Loop() {
		if _, problems := Parse(src, Options{}); len(problems) != 1 || problems[0].Pos.Line != 203 {
			b.Fatal(problems)
		}
	}
}
