package server

import (
	"strconv"
	"strings"
)

// A line diff for the console's policy comparison: the longest common
// subsequence of the lines, after the common prefix and suffix are set
// aside, shown in hunks with a few lines of context as `diff -u` shows
// them.

// diffOp is what a diff line is.
type diffOp byte

const (
	diffSame diffOp = ' '
	diffDel  diffOp = '-'
	diffAdd  diffOp = '+'
)

// diffLine is one line of a diff with its numbers in the old and new text
// (0 where it has none).
type diffLine struct {
	Op       diffOp
	Text     string
	Old, New int
}

// Sign is the line's marker: " ", "-" or "+".
func (l diffLine) Sign() string { return string(l.Op) }

// Class names the line's kind for the style sheet.
func (l diffLine) Class() string {
	switch l.Op {
	case diffDel:
		return "del"
	case diffAdd:
		return "add"
	}
	return "same"
}

// diffHunk is a run of changes with its context.
type diffHunk struct {
	OldStart, OldLines, NewStart, NewLines int
	Lines                                  []diffLine
}

// Header is the hunk's "@@ -a,b +c,d @@" line.
func (h diffHunk) Header() string {
	return "@@ -" + span(h.OldStart, h.OldLines) + " +" + span(h.NewStart, h.NewLines) + " @@"
}

func span(start, n int) string {
	return strconv.Itoa(start) + "," + strconv.Itoa(n)
}

// maxDiffCells bounds the LCS table; beyond it the changed middle is
// shown as removed then added, which is a correct diff, only not the
// shortest.
const maxDiffCells = 1 << 22

// splitLines splits text into lines; a final newline ends the last line
// rather than starting an empty one.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// diffLines is every line of a and b, in order, each marked same, removed
// (only in a) or added (only in b); the removed and added lines are as few
// as possible when the changed middle is within maxDiffCells.
func diffLines(a, b []string) []diffLine {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	out := make([]diffLine, 0, len(a)+len(b))
	for i := range pre {
		out = append(out, diffLine{Op: diffSame, Text: a[i], Old: i + 1, New: i + 1})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	oldN, newN := pre, pre
	del := func(s string) { oldN++; out = append(out, diffLine{Op: diffDel, Text: s, Old: oldN}) }
	add := func(s string) { newN++; out = append(out, diffLine{Op: diffAdd, Text: s, New: newN}) }
	same := func(s string) {
		oldN++
		newN++
		out = append(out, diffLine{Op: diffSame, Text: s, Old: oldN, New: newN})
	}
	if len(ma)*len(mb) > maxDiffCells {
		for _, s := range ma {
			del(s)
		}
		for _, s := range mb {
			add(s)
		}
	} else {
		// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
		w := len(mb) + 1
		lcs := make([]int32, (len(ma)+1)*w)
		for i := len(ma) - 1; i >= 0; i-- {
			for j := len(mb) - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
				} else {
					lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < len(ma) && j < len(mb) {
			switch {
			case ma[i] == mb[j]:
				same(ma[i])
				i++
				j++
			case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
				del(ma[i])
				i++
			default:
				add(mb[j])
				j++
			}
		}
		for ; i < len(ma); i++ {
			del(ma[i])
		}
		for ; j < len(mb); j++ {
			add(mb[j])
		}
	}
	for k := len(a) - suf; k < len(a); k++ {
		same(a[k])
	}
	return out
}

// diffContext is how many unchanged lines a hunk shows around a change.
const diffContext = 3

// hunks groups the changes of lines into hunks with diffContext lines of
// context; hunks whose context would touch are one. No change: no hunk.
func hunks(lines []diffLine) []diffHunk {
	var out []diffHunk
	for i := 0; i < len(lines); {
		if lines[i].Op == diffSame {
			i++
			continue
		}
		start := max(0, i-diffContext)
		end := i // one past the last change of the hunk
		for k := i; k < len(lines); k++ {
			if lines[k].Op != diffSame {
				end = k + 1
			} else if k-end >= 2*diffContext {
				break
			}
		}
		stop := min(len(lines), end+diffContext)
		h := diffHunk{Lines: lines[start:stop]}
		for _, l := range h.Lines {
			if l.Op != diffAdd {
				h.OldLines++
				if h.OldStart == 0 {
					h.OldStart = l.Old
				}
			}
			if l.Op != diffDel {
				h.NewLines++
				if h.NewStart == 0 {
					h.NewStart = l.New
				}
			}
		}
		// An empty side starts at the line before, as diff -u says it.
		if h.OldLines == 0 {
			h.OldStart = lineBefore(lines[:start], true)
		}
		if h.NewLines == 0 {
			h.NewStart = lineBefore(lines[:start], false)
		}
		out = append(out, h)
		i = stop
	}
	return out
}

// lineBefore is the number of the last old (or new) line in lines, 0 for
// none.
func lineBefore(lines []diffLine, old bool) int {
	for k := len(lines) - 1; k >= 0; k-- {
		if old && lines[k].Old > 0 {
			return lines[k].Old
		}
		if !old && lines[k].New > 0 {
			return lines[k].New
		}
	}
	return 0
}
