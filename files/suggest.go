package files

import (
	"fmt"
	"strings"

	"github.com/gatehouse-dev/gatehouse/annotations"
)

// The annotations package has the same kind of helper for the annotation
// language, tuned for snake_case keys; Kubernetes field names are
// camelCase, so this one compares names with case and separators folded
// away (target_port and TargetPort both find targetPort), on the same
// edit distance.

// suggest returns the candidate the user most likely meant by word, or "".
func suggest(word string, candidates []string) string {
	norm := foldName(word)
	for _, c := range candidates {
		if foldName(c) == norm {
			return c
		}
	}
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := annotations.EditDistance(norm, foldName(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	// Short words are a couple of edits away from almost anything.
	if best != "" && bestDist*2 > len(norm) {
		return ""
	}
	return best
}

// didYouMean formats a suggestion for appending to a message.
func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// foldName lower-cases a field name and drops '_' and '-', the differences
// between camelCase, snake_case and kebab-case spellings of one name.
func foldName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-':
			return -1
		}
		return toLowerASCII(r)
	}, s)
}

func toLowerASCII(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}
