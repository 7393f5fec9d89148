package demo

import (
	"maps"
	"slices"
	"testing"
)

// TestToolHintsAndScopesAgree: every tool has both annotations and scopes;
// a tool that is not read-only needs a scope no read-only tool needs; and a
// destructive tool needs only sensitive scopes that no other tool needs, so
// that a person consents to destruction on its own.
func TestToolHintsAndScopesAgree(t *testing.T) {
	if a, b := slices.Sorted(maps.Keys(toolHints)), slices.Sorted(maps.Keys(toolScopes)); !slices.Equal(a, b) {
		t.Fatalf("tools with hints %q, tools with scopes %q", a, b)
	}
	sensitive := map[string]bool{}
	for _, s := range Scopes() {
		sensitive[s.Name] = s.Sensitive
	}
	usedBy := func(scope string, pred func(string) bool) []string {
		var tools []string
		for tool, scopes := range toolScopes {
			if pred(tool) && slices.Contains(scopes, scope) {
				tools = append(tools, tool)
			}
		}
		return tools
	}
	for tool, h := range toolHints {
		if h.DestructiveHint == nil || h.OpenWorldHint == nil {
			t.Errorf("%s leaves a hint to its pessimistic default", tool)
		}
		if len(toolScopes[tool]) == 0 {
			t.Errorf("%s needs no scope", tool)
		}
		if h.ReadOnlyHint {
			continue
		}
		for _, s := range toolScopes[tool] {
			if readers := usedBy(s, func(o string) bool { return toolHints[o].ReadOnlyHint }); len(readers) > 0 {
				t.Errorf("%s changes data but its scope %s also serves read-only %q", tool, s, readers)
			}
		}
		if h.DestructiveHint == nil || !*h.DestructiveHint {
			continue
		}
		for _, s := range toolScopes[tool] {
			if !sensitive[s] {
				t.Errorf("destructive %s needs %s, which is not sensitive", tool, s)
			}
			if others := usedBy(s, func(o string) bool { return o != tool }); len(others) > 0 {
				t.Errorf("destructive %s shares its scope %s with %q", tool, s, others)
			}
		}
	}
}
