package main

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/keyring"
)

// The packaging files: Dockerfile, docker-compose.yml, deploy/kubernetes
// and deploy/systemd. These tests lint them against the code: every
// agentid command line in them is one the CLI accepts, every AGENTID_
// variable is one the loader reads, every configuration file loads through
// the real loader with the environment the manifest gives it, nothing runs
// as root, and the probes ask /healthz and /readyz on the port the hub
// listens on. No image is built.

const repoRoot = "../.."

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkCommandLine checks that args (after the binary's name) is an agentid
// command line the CLI accepts: a real command, known flags, the
// arguments it takes. It returns the --config path it names ("" for none)
// and the command's path.
func checkCommandLine(t *testing.T, where string, args []string) (configPath, cmdPath string) {
	t.Helper()
	c := &cli{flagSettings: map[string]string{}}
	root := c.newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Errorf("%s: %q is no agentid command (%v)", where, args, err)
		return "", ""
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: %q: %v", where, args, err)
		return "", ""
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Errorf("%s: %q: %v", where, args, err)
	}
	return c.configPath, cmd.CommandPath()
}

// checkEnvNames reports AGENTID_ variables the loader does not read: a
// misspelt one would be ignored silently.
func checkEnvNames(t *testing.T, where string, env map[string]string) {
	t.Helper()
	known := config.EnvNames()
	for k := range env {
		if strings.HasPrefix(k, "AGENTID_") && !slices.Contains(known, k) {
			t.Errorf("%s: environment variable %s is not a setting agentid reads", where, k)
		}
	}
}

// loadDeployConfig loads the configuration file at path with env through
// config.Load, as the hub would start.
func loadDeployConfig(t *testing.T, where, path string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("%s: %s does not load: %v", where, path, err)
	}
	return cfg
}

func listenPort(t *testing.T, cfg *config.Config) string {
	t.Helper()
	_, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		t.Fatalf("listen %q: %v", cfg.Listen, err)
	}
	return port
}

// nonRootUser reports whether a USER / user: value names someone other
// than root.
func nonRootUser(u string) bool {
	name, _, _ := strings.Cut(u, ":")
	return name != "" && name != "root" && name != "0"
}

// testKEK is a well-formed KEK for the manifests' placeholders.
func testKEK(t *testing.T) string {
	k, err := keyring.GenerateKEK(nil)
	if err != nil {
		t.Fatal(err)
	}
	return keyring.FormatKEK(k)
}

type dockerInstr struct{ op, args string }

// parseDockerfile returns the instructions of each stage (continuation
// lines joined, comments dropped).
func parseDockerfile(src string) [][]dockerInstr {
	var stages [][]dockerInstr
	var cur strings.Builder
	for line := range strings.SplitSeq(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := dockerInstr{strings.ToUpper(op), strings.TrimSpace(args)}
		if in.op == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	return stages
}

// dockerImage is what the Dockerfile's final stage runs and holds.
type dockerImage struct {
	entrypoint []string
	configSrc  string // the repository file COPY'd to the --config path
	port       string
}

func lintDockerfile(t *testing.T) dockerImage {
	t.Helper()
	stages := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s), want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The build stage's Go is at least go.mod's.
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	from := regexp.MustCompile(`^golang:(\d+\.\d+)`).FindStringSubmatch(build[0].args)
	if goLine == nil || from == nil || !versionAtLeast(from[1], goLine[1]) {
		t.Errorf("Dockerfile: build stage %q does not provide go.mod's Go %v", build[0].args, goLine)
	}
	static := false
	for _, in := range build {
		if in.op == "RUN" && strings.Contains(in.args, "go build") {
			static = strings.Contains(in.args, "CGO_ENABLED=0") && strings.Contains(in.args, "./cmd/agentid")
		}
	}
	if !static {
		t.Error("Dockerfile: the build stage does not build ./cmd/agentid with CGO_ENABLED=0")
	}

	if base := final[0].args; !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("Dockerfile: the runtime stage is %q, want distroless/static or scratch", base)
	}
	var img dockerImage
	copies := map[string]string{} // destination → source in the repository
	user := ""
	for _, in := range final {
		switch in.op {
		case "USER":
			user = in.args
		case "EXPOSE":
			img.port = strings.TrimSuffix(in.args, "/tcp")
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) == 2 {
				copies[f[1]] = f[0]
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &img.entrypoint); err != nil {
				t.Errorf("Dockerfile: ENTRYPOINT is not in exec form: %v", err)
			}
		}
	}
	if !nonRootUser(user) {
		t.Errorf("Dockerfile: the runtime stage runs as %q, want a non-root USER", user)
	}
	if len(img.entrypoint) < 2 || !strings.HasSuffix(img.entrypoint[0], "/agentid") {
		t.Fatalf("Dockerfile: ENTRYPOINT %q does not run agentid", img.entrypoint)
	}
	cfgPath, cmdPath := checkCommandLine(t, "Dockerfile ENTRYPOINT", img.entrypoint[1:])
	if cmdPath != "agentid serve" || cfgPath == "" {
		t.Fatalf("Dockerfile: ENTRYPOINT runs %q with --config %q, want agentid serve --config FILE", cmdPath, cfgPath)
	}
	img.configSrc = copies[cfgPath]
	if img.configSrc == "" {
		t.Fatalf("Dockerfile: nothing is copied to the --config path %s", cfgPath)
	}
	cfg := loadDeployConfig(t, "Dockerfile", filepath.Join(repoRoot, img.configSrc), nil)
	if p := listenPort(t, cfg); p != img.port {
		t.Errorf("Dockerfile: EXPOSE %s, but the image's configuration listens on %s", img.port, cfg.Listen)
	}
	if host, _, _ := net.SplitHostPort(cfg.Listen); host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("Dockerfile: the image listens on %s, unreachable from outside the container", cfg.Listen)
	}
	return img
}

func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range 2 {
		a, _ := strconv.Atoi(h[i])
		b, _ := strconv.Atoi(w[i])
		if a != b {
			return a > b
		}
	}
	return true
}

// TestDockerfile lints the Dockerfile: a static build, a distroless or
// scratch runtime as a non-root user, an ENTRYPOINT the CLI accepts, a
// configuration that loads and listens on the EXPOSEd port.
func TestDockerfile(t *testing.T) {
	lintDockerfile(t)
}

// composeVar is a ${NAME}, ${NAME:?message} or ${NAME:-default} reference.
var composeVar = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}`)

// TestDockerCompose lints docker-compose.yml: PostgreSQL, at least three
// agentid replicas from the Dockerfile's image on it, a proxy in front of
// every replica; nobody runs as root; the replicas' command lines and
// environment are agentid's; their configuration (the image's file, or
// one mounted over --config, and their environment) loads, selects
// PostgreSQL, agrees on the issuer and trusts the proxy's fixed address
// for X-Forwarded-For; their stop_grace_period covers the hub's stop.
func TestDockerCompose(t *testing.T) {
	img := lintDockerfile(t)
	src := readRepoFile(t, "docker-compose.yml")
	values := map[string]string{"POSTGRES_PASSWORD": "compose-test-password", "AGENTID_KEK": testKEK(t)}
	for _, m := range composeVar.FindAllStringSubmatch(src, -1) {
		if _, ok := values[m[1]]; !ok {
			t.Errorf("docker-compose.yml uses ${%s}, which the header does not tell the reader to set", m[1])
		}
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			User        string            `yaml:"user"`
			ReadOnly    bool              `yaml:"read_only"`
			Entrypoint  []string          `yaml:"entrypoint"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
			StopGrace   string            `yaml:"stop_grace_period"`
			Networks    map[string]*struct {
				IPv4Address string `yaml:"ipv4_address"`
			} `yaml:"networks"`
		} `yaml:"services"`
		Networks map[string]struct {
			IPAM struct {
				Config []struct {
					Subnet string `yaml:"subnet"`
				} `yaml:"config"`
			} `yaml:"ipam"`
		} `yaml:"networks"`
	}
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	var replicas []string
	issuers := map[string]bool{}
	proxies := 0
	trusts := map[string][]netip.Prefix{} // replica → its trusted_proxies
	var proxyAddrs []netip.Addr           // the proxy's fixed addresses
	for name, s := range doc.Services {
		if !nonRootUser(s.User) {
			t.Errorf("docker-compose.yml: service %s runs as %q, want a non-root user", name, s.User)
		}
		switch {
		case s.Build != nil:
			replicas = append(replicas, name)
			if !s.ReadOnly {
				t.Errorf("docker-compose.yml: replica %s has a writable root filesystem", name)
			}
			args := img.entrypoint
			if len(s.Entrypoint) > 0 {
				args = append(append([]string(nil), s.Entrypoint...), s.Command...)
			}
			if len(args) < 2 || args[0] != img.entrypoint[0] {
				t.Errorf("docker-compose.yml: replica %s runs %q, not the image's %s", name, args, img.entrypoint[0])
				continue
			}
			cfgPath, cmdPath := checkCommandLine(t, "docker-compose.yml "+name, args[1:])
			// The configuration: a repository file mounted at --config,
			// else the image's own.
			cfgSrc := ""
			for _, v := range s.Volumes {
				if f := strings.Split(v, ":"); len(f) >= 2 && f[1] == cfgPath {
					cfgSrc = f[0]
				}
			}
			if cfgSrc == "" && cfgPath == img.entrypoint[len(img.entrypoint)-1] {
				cfgSrc = img.configSrc
			}
			if cmdPath != "agentid serve" || cfgSrc == "" {
				t.Errorf("docker-compose.yml: replica %s runs %s --config %s, neither the image's configuration nor a file mounted there", name, cmdPath, cfgPath)
				continue
			}
			checkStopGrace(t, "docker-compose.yml "+name+" stop_grace_period", s.StopGrace, 0)
			env := map[string]string{}
			for k, v := range s.Environment {
				env[k] = composeVar.ReplaceAllStringFunc(v, func(ref string) string {
					return values[composeVar.FindStringSubmatch(ref)[1]]
				})
			}
			checkEnvNames(t, "docker-compose.yml "+name, env)
			cfg := loadDeployConfig(t, "docker-compose.yml "+name, filepath.Join(repoRoot, cfgSrc), env)
			if p := listenPort(t, cfg); p != img.port {
				t.Errorf("docker-compose.yml: replica %s listens on %s, the image EXPOSEs %s", name, cfg.Listen, img.port)
			}
			trusts[name] = cfg.TrustedProxyPrefixes()
			if !cfg.IsPostgres() {
				t.Errorf("docker-compose.yml: replica %s does not use PostgreSQL", name)
			}
			if cfg.KEK.Value == "" {
				t.Errorf("docker-compose.yml: replica %s has no shared KEK (each would create its own)", name)
			}
			issuers[cfg.Issuer] = true
		case strings.Contains(s.Image, "nginx"):
			proxies++
			// The proxy's address, fixed inside its network's subnet, is
			// what the replicas trust for X-Forwarded-For.
			for net, n := range s.Networks {
				var a netip.Addr
				err := errors.New("no ipv4_address")
				if n != nil {
					a, err = netip.ParseAddr(n.IPv4Address)
				}
				if err != nil {
					t.Errorf("docker-compose.yml: the proxy has no fixed ipv4_address on network %s, so the replicas cannot trust it", net)
					continue
				}
				inSubnet := false
				for _, c := range doc.Networks[net].IPAM.Config {
					if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Contains(a) {
						inSubnet = true
					}
				}
				if !inSubnet {
					t.Errorf("docker-compose.yml: the proxy's address %s is in no subnet of network %s", a, net)
				}
				proxyAddrs = append(proxyAddrs, a)
			}
			for _, v := range s.Volumes {
				hostPath, _, _ := strings.Cut(v, ":")
				conf := readRepoFile(t, hostPath)
				if !regexp.MustCompile(`(?m)^\s*proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;`).MatchString(conf) {
					t.Errorf("%s: the proxy does not append the client's address to X-Forwarded-For", hostPath)
				}
				defer func() {
					for _, r := range replicas {
						if !regexp.MustCompile(`(?m)^\s*server\s+` + regexp.QuoteMeta(r) + ":" + img.port + `\b`).MatchString(conf) {
							t.Errorf("%s: the proxy does not send to replica %s on port %s", hostPath, r, img.port)
						}
					}
				}()
			}
		}
	}
	if len(replicas) < 3 {
		t.Errorf("docker-compose.yml: %d agentid replicas, want 3", len(replicas))
	}
	if len(issuers) != 1 {
		t.Errorf("docker-compose.yml: the replicas name %d issuers, want one", len(issuers))
	}
	if _, ok := doc.Services["postgres"]; !ok {
		t.Error("docker-compose.yml: no postgres service")
	}
	if proxies != 1 {
		t.Errorf("docker-compose.yml: %d proxies, want 1", proxies)
	}
	if len(proxyAddrs) == 0 {
		t.Error("docker-compose.yml: the proxy has no fixed address (networks: …: ipv4_address)")
	}
	// Every replica trusts the proxy in front of it, else per-address
	// limits and audit events see only the proxy's address.
	for _, r := range replicas {
		for _, a := range proxyAddrs {
			if !isTrustedProxy(a, trusts[r]) {
				t.Errorf("docker-compose.yml: replica %s does not list the proxy's address %s in trusted_proxies", r, a)
			}
		}
	}
}

func isTrustedProxy(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkStopGrace checks that a manifest's stop timeout (a Go duration, as
// systemd and Compose write them here) leaves the hub its whole stop
// budget after what runs before SIGTERM (before, a preStop pause).
func checkStopGrace(t *testing.T, where, value string, before time.Duration) {
	t.Helper()
	d, err := time.ParseDuration(value)
	if err != nil {
		t.Errorf("%s: %q is no duration (unset, the platform's default is shorter than the hub's stop): %v", where, value, err)
		return
	}
	if d-before <= stopBudget {
		t.Errorf("%s is %s (%s after preStop): the hub may take %s to stop cleanly (stopBudget), so it would be killed mid-drain", where, d, d-before, stopBudget)
	}
}

// k8sObject is the part of a Kubernetes object the lint reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		// Service
		ServiceSelector map[string]string `yaml:"-"`
		Ports           []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	raw map[string]any
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name    string   `yaml:"name"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Ports   []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		Env []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name string `yaml:"name"`
					Key  string `yaml:"key"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		} `yaml:"securityContext"`
		Lifecycle struct {
			PreStop *struct {
				Sleep *struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
				Exec *struct {
					Command []string `yaml:"command"`
				} `yaml:"exec"`
				HTTPGet any `yaml:"httpGet"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
		StartupProbe   *k8sProbe `yaml:"startupProbe"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	} `yaml:"containers"`
	Volumes []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// readK8s decodes every object of the files kustomization.yaml lists.
func readK8s(t *testing.T) map[string]*k8sObject {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "deploy/kubernetes/kustomization.yaml")), &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	objs := map[string]*k8sObject{}
	for _, f := range kust.Resources {
		dec := yaml.NewDecoder(strings.NewReader(readRepoFile(t, "deploy/kubernetes/"+f)))
		for {
			var node yaml.Node
			if err := dec.Decode(&node); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("deploy/kubernetes/%s: %v", f, err)
			}
			o := &k8sObject{}
			if err := node.Decode(o); err != nil {
				t.Fatalf("deploy/kubernetes/%s: %v", f, err)
			}
			if err := node.Decode(&o.raw); err != nil {
				t.Fatalf("deploy/kubernetes/%s: %v", f, err)
			}
			if o.Kind == "Service" {
				var svc struct {
					Spec struct {
						Selector map[string]string `yaml:"selector"`
					} `yaml:"spec"`
				}
				if err := node.Decode(&svc); err != nil {
					t.Fatal(err)
				}
				o.Spec.ServiceSelector = svc.Spec.Selector
			}
			key := o.Kind + "/" + o.Metadata.Name
			if objs[key] != nil {
				t.Fatalf("deploy/kubernetes: %s twice", key)
			}
			objs[key] = o
		}
	}
	return objs
}

// TestKubernetesManifests lints deploy/kubernetes: a Deployment of three
// replicas that run as non-root on a read-only root filesystem without
// privilege escalation, probe /healthz (startup, liveness) and /readyz
// (readiness) on the port the hub listens on, run a command line the CLI
// accepts with the ConfigMap's configuration — which loads with the
// Secret's values, selects PostgreSQL and serves metrics on a
// containerPort of their own — pause in preStop (the sleep action: the
// image has no shell) and have a grace period covering the pause and the
// hub's stop, and a Service that reaches them.
func TestKubernetesManifests(t *testing.T) {
	objs := readK8s(t)
	dep := objs["Deployment/agentid"]
	if dep == nil {
		t.Fatalf("no Deployment agentid in %v", slices.Collect(func(yield func(string) bool) {
			for k := range objs {
				if !yield(k) {
					return
				}
			}
		}))
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("Deployment: replicas %v, want 3", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Deployment: the selector's %s=%s is not on the pods", k, v)
		}
	}
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("Deployment: the pod's securityContext does not require a non-root user")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("Deployment: the container's root filesystem is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("Deployment: the container allows privilege escalation")
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("Deployment: the container does not require a non-root user")
	}

	img := lintDockerfile(t)
	if len(c.Command) != 1 || c.Command[0] != img.entrypoint[0] {
		t.Errorf("Deployment: command %q, want the image's binary %s", c.Command, img.entrypoint[0])
	}
	cfgPath, cmdPath := checkCommandLine(t, "Deployment args", c.Args)
	if cmdPath != "agentid serve" || cfgPath == "" {
		t.Fatalf("Deployment: runs %s --config %q, want agentid serve --config FILE", cmdPath, cfgPath)
	}

	// The configuration: the ConfigMap mounted at --config's directory.
	var cmName string
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(cfgPath) {
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil {
					cmName = v.ConfigMap.Name
				}
			}
		}
	}
	cm := objs["ConfigMap/"+cmName]
	if cm == nil || cm.Data[filepath.Base(cfgPath)] == "" {
		t.Fatalf("Deployment: --config %s is not a key of a ConfigMap mounted there", cfgPath)
	}
	cfgFile := filepath.Join(t.TempDir(), filepath.Base(cfgPath))
	if err := os.WriteFile(cfgFile, []byte(cm.Data[filepath.Base(cfgPath)]), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			sec := objs["Secret/"+ref.Name]
			if sec == nil {
				t.Errorf("Deployment: %s refers to the Secret %s, which is not in the manifests", e.Name, ref.Name)
				continue
			}
			v, ok := sec.StringData[ref.Key]
			if !ok {
				t.Errorf("Deployment: %s refers to key %s, which the Secret %s lacks", e.Name, ref.Key, ref.Name)
			}
			if e.Name == "AGENTID_KEK" || e.Name == "AGENTID_KEK_VALUE" {
				v = testKEK(t) // the Secret holds a placeholder
			}
			env[e.Name] = v
		default:
			env[e.Name] = e.Value
		}
	}
	checkEnvNames(t, "Deployment", env)
	cfg := loadDeployConfig(t, "Deployment", cfgFile, env)
	if !cfg.IsPostgres() {
		t.Error("Deployment: three replicas need a shared PostgreSQL store, the configuration uses SQLite")
	}
	if cfg.KEK.Value == "" {
		t.Error("Deployment: no shared KEK (each replica would create its own)")
	}

	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
		ports[strconv.Itoa(p.ContainerPort)] = p.ContainerPort
	}
	if want := listenPort(t, cfg); strconv.Itoa(ports["http"]) != want {
		t.Errorf("Deployment: containerPort http is %d, the hub listens on %s", ports["http"], cfg.Listen)
	}
	// Metrics on a listener and a containerPort of their own.
	if cfg.Metrics.Listen == "" {
		t.Error("Deployment: the configuration sets no metrics.listen (no Prometheus metrics)")
	} else {
		host, port, err := net.SplitHostPort(cfg.Metrics.Listen)
		if err != nil || strconv.Itoa(ports["metrics"]) != port {
			t.Errorf("Deployment: containerPort metrics is %d, the hub serves metrics on %s", ports["metrics"], cfg.Metrics.Listen)
		}
		if host != "0.0.0.0" && host != "" && host != "::" {
			t.Errorf("Deployment: metrics.listen %s is unreachable from outside the container", cfg.Metrics.Listen)
		}
	}

	// Stopping: endpoints go away before the hub stops accepting, and the
	// grace period covers that pause and the hub's own stop.
	var pause time.Duration
	switch ps := c.Lifecycle.PreStop; {
	case ps == nil:
		t.Error("Deployment: no preStop pause: the hub closes its listener on SIGTERM while other nodes still route new connections to the pod")
	case ps.Exec != nil:
		t.Errorf("Deployment: preStop runs %q, but the distroless image has no shell and no sleep; use the sleep action", ps.Exec.Command)
	case ps.Sleep == nil || ps.Sleep.Seconds <= 0:
		t.Error("Deployment: preStop does not pause (lifecycle.preStop.sleep.seconds)")
	default:
		pause = time.Duration(ps.Sleep.Seconds) * time.Second
	}
	grace := "30s" // Kubernetes' default
	if g := pod.TerminationGracePeriodSeconds; g != nil {
		grace = strconv.Itoa(*g) + "s"
	}
	checkStopGrace(t, "Deployment terminationGracePeriodSeconds", grace, pause)
	for _, p := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/healthz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("Deployment: no HTTP %s", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("Deployment: %s asks %s, want %s", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if ports[toString(p.probe.HTTPGet.Port)] != ports["http"] {
			t.Errorf("Deployment: %s asks port %v, not the hub's", p.name, p.probe.HTTPGet.Port)
		}
	}

	svc := objs["Service/agentid"]
	if svc == nil {
		t.Fatal("no Service agentid")
	}
	for k, v := range svc.Spec.ServiceSelector {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service: its selector %s=%s matches no pod of the Deployment", k, v)
		}
	}
	if len(svc.Spec.ServiceSelector) == 0 {
		t.Error("Service: no selector")
	}
	for _, p := range svc.Spec.Ports {
		if ports[toString(p.TargetPort)] != ports["http"] || ports["http"] == 0 {
			t.Errorf("Service: port %d targets %v, not the hub's port", p.Port, p.TargetPort)
		}
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	}
	return ""
}

// parseUnit reads a systemd unit: section → key → values (a key may
// repeat).
func parseUnit(src string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, _ := strings.Cut(line, "=")
			out[section][strings.TrimSpace(k)] = append(out[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return out
}

// TestSystemdUnit lints deploy/systemd/agentid.service: a non-root user,
// the hardening (NoNewPrivileges, ProtectSystem=strict), a StateDirectory
// that is the configuration's data_dir, an ExecStart the CLI accepts with
// deploy/systemd/agentid.yaml, which loads, and a TimeoutStopSec that
// covers the hub's stop.
func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(readRepoFile(t, "deploy/systemd/agentid.service"))
	svc := unit["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	one := func(k string) string {
		if v := svc[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	if one("DynamicUser") != "yes" && !nonRootUser(one("User")) {
		t.Errorf("the unit runs as User=%q without DynamicUser: root", one("User"))
	}
	for k, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes"} {
		if one(k) != want {
			t.Errorf("%s=%q, want %s", k, one(k), want)
		}
	}
	if one("CapabilityBoundingSet") != "" || len(svc["CapabilityBoundingSet"]) == 0 {
		t.Error("the unit does not drop every capability (CapabilityBoundingSet=)")
	}
	checkStopGrace(t, "TimeoutStopSec", one("TimeoutStopSec"), 0)
	if one("StateDirectory") == "" {
		t.Fatal("no StateDirectory: with ProtectSystem=strict the hub could write nowhere")
	}
	exec := strings.Fields(one("ExecStart"))
	if len(exec) < 2 || !strings.HasSuffix(exec[0], "/agentid") {
		t.Fatalf("ExecStart %q does not run agentid", exec)
	}
	cfgPath, cmdPath := checkCommandLine(t, "ExecStart", exec[1:])
	if cmdPath != "agentid serve" || cfgPath != "/etc/agentid/agentid.yaml" {
		t.Fatalf("ExecStart runs %s --config %q, want agentid serve --config /etc/agentid/agentid.yaml", cmdPath, cfgPath)
	}
	var env map[string]string
	for _, e := range svc["Environment"] {
		k, v, _ := strings.Cut(strings.Trim(e, `"`), "=")
		if env == nil {
			env = map[string]string{}
		}
		env[k] = v
	}
	checkEnvNames(t, "agentid.service", env)
	cfg := loadDeployConfig(t, "agentid.service", filepath.Join(repoRoot, "deploy/systemd/agentid.yaml"), env)
	if cfg.DataDir != filepath.Join("/var/lib", one("StateDirectory")) {
		t.Errorf("data_dir %s is not the unit's StateDirectory /var/lib/%s: ProtectSystem=strict makes it read-only", cfg.DataDir, one("StateDirectory"))
	}
	// The comment's install steps put the configuration where ExecStart
	// reads it, and its admin command runs as the service's user with the
	// service's configuration.
	src := readRepoFile(t, "deploy/systemd/agentid.service")
	if !strings.Contains(src, "deploy/systemd/agentid.yaml "+cfgPath) {
		t.Errorf("the unit's install steps do not put deploy/systemd/agentid.yaml at %s", cfgPath)
	}
	admin := regexp.MustCompile(`(?m)^#\s+sudo -u (\S+) agentid (.+)$`).FindStringSubmatch(src)
	if admin == nil {
		t.Fatal("the unit's header shows no admin command run as the service's user")
	}
	if admin[1] != one("User") {
		t.Errorf("the admin example runs as %s, the service as %s", admin[1], one("User"))
	}
	if adminCfg, _ := checkCommandLine(t, "the unit's admin example", strings.Fields(admin[2])); adminCfg != cfgPath {
		t.Errorf("the admin example reads %q, the service %s", adminCfg, cfgPath)
	}
}

// dockerGoBuild is the Dockerfile build stage's go build: the environment
// assignments before it and its arguments after "go".
func dockerGoBuild(t *testing.T) (env, args []string) {
	t.Helper()
	stages := parseDockerfile(readRepoFile(t, "Dockerfile"))
	for _, in := range stages[0] {
		if in.op != "RUN" {
			continue
		}
		for cmd := range strings.SplitSeq(in.args, "&&") {
			words, err := splitWords(strings.TrimSpace(cmd))
			if err != nil {
				t.Fatalf("Dockerfile: RUN %s: %v", in.args, err)
			}
			i := 0
			for i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-") {
				i++
			}
			if len(words) > i+1 && words[i] == "go" && words[i+1] == "build" {
				return words[:i], words[i+1:]
			}
		}
	}
	t.Fatal("Dockerfile: the build stage runs no go build")
	return nil, nil
}

// TestDockerfileBuildsStaticBinary runs the Dockerfile's own go build
// command line (its environment and flags, read from the Dockerfile; only
// the -o path is this test's) on the repository, and checks that the
// result is an ELF executable that needs no dynamic loader and no shared
// library: what distroless/static can run. No image is built.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel() // a build of its own (-trimpath, no cgo), which scripts/test.sh's benchmark step reuses
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	env, args := dockerGoBuild(t)
	out := filepath.Join(t.TempDir(), "agentid")
	outSet := false
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1], outSet = out, true
		}
	}
	if !outSet {
		t.Fatalf("Dockerfile: go %q names no -o output", args)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = repoRoot // the Dockerfile's WORKDIR after COPY . .
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s go %s: %v\n%s", strings.Join(env, " "), strings.Join(args, " "), err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("the Dockerfile's build is no ELF file: %v", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		t.Errorf("the Dockerfile's build is an ELF %s, not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the Dockerfile's build asks for a dynamic loader (PT_INTERP): it does not run on distroless/static")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the Dockerfile's build needs shared libraries %v (DT_NEEDED): it does not run on distroless/static", libs)
	}
}
