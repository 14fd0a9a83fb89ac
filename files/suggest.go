package files

import (
	"fmt"
	"strings"
)

// The annotations package has the same kind of helper for the annotation
// language, but unexported and tuned for snake_case keys; Kubernetes field
// names are camelCase, so this one compares names with case and separators
// folded away (target_port and TargetPort both find targetPort).

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
		if d := editDistance(norm, foldName(c)); d < bestDist {
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

// editDistance is the optimal string alignment distance over bytes (a swap
// of neighbouring letters counts as one edit). Inputs longer than any name
// compared are cut short: they cannot be within two edits, and a long
// unknown key must not cost quadratic time.
func editDistance(a, b string) int {
	const maxLen = 64
	if len(a) > maxLen || len(b) > maxLen {
		return maxLen
	}
	var rows [3][maxLen + 1]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
