package config

import (
	"maps"
	"slices"
)

// EnvNames returns every environment variable the loader reads, sorted:
// one per setting (AGENTID_ + its path) and the aliases. A variable that
// starts with AGENTID_ and is not listed is ignored by the loader, which is
// how a deployment manifest can lint its environment.
func EnvNames() []string {
	var out []string
	for _, s := range settings() {
		out = append(out, s.env)
	}
	out = append(out, slices.Collect(maps.Values(envAliases))...)
	slices.Sort(out)
	return out
}
