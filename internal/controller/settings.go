package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/version"
)

// The controller publishes the settings that change its decisions in a ConfigMap of its own namespace,
// so that `certrollout plan` and `check` decide as it does without being told its flags.
const (
	// SettingsConfigMap is the ConfigMap's name, SettingsKey its one key (JSON, kind ControllerSettings).
	SettingsConfigMap = "certrollout-settings"
	SettingsKey       = "settings.json"
	// DefaultControllerNamespace is where config/default and the README install the controller: where
	// the CLI looks when it may not list ConfigMaps across namespaces and is not told.
	DefaultControllerNamespace = "certrollout-system"
	// SettingsKind is the kind of the published document.
	SettingsKind = "ControllerSettings"
)

// Settings are the controller's flags that change what it decides about a workload or a rollout.
type Settings struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Version is the controller's build.
	Version string `json:"version,omitempty"`
	// Namespaces it watches; empty: all.
	Namespaces               []string        `json:"namespaces,omitempty"`
	Auto                     bool            `json:"auto"`
	SettlePeriod             metav1.Duration `json:"settlePeriod"`
	MinRestartInterval       metav1.Duration `json:"minRestartInterval"`
	RestartRate              float64         `json:"restartRate"`
	RestartBurst             int             `json:"restartBurst"`
	MaxRestartsPerDay        int             `json:"maxRestartsPerDay"`
	MaxConcurrentRollouts    int             `json:"maxConcurrentRollouts"`
	MaxRolloutsPerNamespace  int             `json:"maxConcurrentRolloutsPerNamespace"`
	CACascade                bool            `json:"caCascade"`
	ClusterResourceNamespace string          `json:"clusterResourceNamespace"`
}

// SettingsOf are the published form of o.
func SettingsOf(o Options) Settings {
	return Settings{
		APIVersion: api.GroupVersion.String(), Kind: SettingsKind, Version: version.Get().Version,
		Namespaces: o.Namespaces, Auto: o.Auto,
		SettlePeriod: metav1.Duration{Duration: o.SettlePeriod}, MinRestartInterval: metav1.Duration{Duration: o.MinRestartInterval},
		RestartRate: o.RestartRate, RestartBurst: o.RestartBurst, MaxRestartsPerDay: o.MaxRestartsPerDay,
		MaxConcurrentRollouts: o.MaxConcurrentRollouts, MaxRolloutsPerNamespace: o.MaxConcurrentRolloutsPerNamespace,
		CACascade: o.CACascade, ClusterResourceNamespace: o.ClusterResourceNamespace,
	}
}

// Apply returns o with the decision settings replaced by s's (the clock, namespaces and process settings
// of o stay; s's namespaces become o's ModelledNamespaces).
func (s Settings) Apply(o Options) Options {
	o.Auto, o.SettlePeriod, o.MinRestartInterval = s.Auto, s.SettlePeriod.Duration, s.MinRestartInterval.Duration
	o.RestartRate, o.RestartBurst, o.MaxRestartsPerDay = s.RestartRate, s.RestartBurst, s.MaxRestartsPerDay
	o.MaxConcurrentRollouts, o.MaxConcurrentRolloutsPerNamespace = s.MaxConcurrentRollouts, s.MaxRolloutsPerNamespace
	o.CACascade, o.ClusterResourceNamespace = s.CACascade, s.ClusterResourceNamespace
	o.ModelledNamespaces = s.Namespaces
	return o
}

// Covers reports whether a controller with these settings watches namespace ns ("": every namespace).
func (s Settings) Covers(ns string) bool {
	if len(s.Namespaces) == 0 {
		return true
	}
	return ns != "" && slices.Contains(s.Namespaces, ns)
}

// String summarises the settings in the words of the controller's flags.
func (s Settings) String() string {
	parts := []string{fmt.Sprintf("--auto=%t", s.Auto), "--settle-period=" + s.SettlePeriod.Duration.String(),
		"--min-restart-interval=" + s.MinRestartInterval.Duration.String(), fmt.Sprintf("--max-restarts-per-day=%d", s.MaxRestartsPerDay)}
	if len(s.Namespaces) > 0 {
		parts = append(parts, "--namespaces="+strings.Join(s.Namespaces, ","))
	}
	if s.CACascade {
		parts = append(parts, "--ca-cascade")
	}
	return strings.Join(parts, " ")
}

// settingsPublisher writes the settings once the manager leads (only the leader's flags decide).
type settingsPublisher struct {
	client    client.Client
	reader    client.Reader // uncached: the cache keeps ConfigMaps reduced to their certificates
	namespace string
	settings  Settings
}

// NeedLeaderElection: the leader's settings are the ones that decide.
func (p *settingsPublisher) NeedLeaderElection() bool { return true }

// Start publishes the settings, retrying with backoff until it succeeds or the manager stops. A
// controller that may not write them still runs: the CLI then assumes defaults, and says so.
func (p *settingsPublisher) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("settings")
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: 8, Cap: time.Minute}
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		if err := p.publish(ctx); err != nil {
			log.Info("Could not publish the controller's settings; will retry", "configmap", p.namespace+"/"+SettingsConfigMap, "error", err.Error())
			return false, nil
		}
		return true, nil
	})
	if err != nil && ctx.Err() == nil {
		log.Error(err, "Gave up publishing the controller's settings; certrollout plan will assume defaults", "configmap", p.namespace+"/"+SettingsConfigMap)
	}
	return nil
}

func (p *settingsPublisher) publish(ctx context.Context) error {
	data, err := json.MarshalIndent(p.settings, "", "  ")
	if err != nil {
		return err
	}
	want := map[string]string{SettingsKey: string(data)}
	var cm corev1.ConfigMap
	err = p.reader.Get(ctx, client.ObjectKey{Namespace: p.namespace, Name: SettingsConfigMap}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: SettingsConfigMap,
			Labels: map[string]string{api.LabelSettings: "true", "app.kubernetes.io/name": "certrollout"}}, Data: want}
		return p.client.Create(ctx, &cm)
	case err != nil:
		return err
	}
	if cm.Data[SettingsKey] == want[SettingsKey] && cm.Labels[api.LabelSettings] == "true" {
		return nil
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[api.LabelSettings] = "true"
	cm.Data = want
	return p.client.Update(ctx, &cm)
}

// ownNamespace is the namespace the controller runs in: its ServiceAccount's, in a pod; else
// $POD_NAMESPACE; "" when neither is known.
func ownNamespace() string {
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return os.Getenv("POD_NAMESPACE")
}

// Published are settings as the CLI found them.
type Published struct {
	Settings
	// Namespace of the ConfigMap they were read from.
	Namespace string
}

// FindSettings reads the settings a controller published: in namespace controllerNS when given; else
// every ConfigMap labelled certrollout.io/settings the reader may list, keeping the controller that
// watches target ("" for all namespaces), and DefaultControllerNamespace when it may not list them.
// found is false when there are none; several controllers covering target are an error.
func FindSettings(ctx context.Context, c client.Reader, controllerNS, target string) (p Published, found bool, err error) {
	if controllerNS != "" {
		return settingsIn(ctx, c, controllerNS, true)
	}
	var list corev1.ConfigMapList
	err = c.List(ctx, &list, client.MatchingLabels{api.LabelSettings: "true"})
	if apierrors.IsForbidden(err) {
		return settingsIn(ctx, c, DefaultControllerNamespace, false)
	}
	if err != nil {
		return Published{}, false, err
	}
	var matches []Published
	for i := range list.Items {
		cm := &list.Items[i]
		if cm.Name != SettingsConfigMap {
			continue
		}
		p, err := parseSettings(cm)
		if err != nil {
			return Published{}, false, err
		}
		if p.Covers(target) {
			matches = append(matches, p)
		}
	}
	switch len(matches) {
	case 0:
		return Published{}, false, nil
	case 1:
		return matches[0], true, nil
	}
	var where []string
	for _, p := range matches {
		where = append(where, p.Namespace)
	}
	return Published{}, false, fmt.Errorf("several certrollout controllers publish settings that cover this namespace (in %s): choose one with --controller-namespace", strings.Join(where, ", "))
}

// settingsIn reads the settings in ns; found is false when there are none, or when the reader may not
// read them and the namespace was a guess (named is false).
func settingsIn(ctx context.Context, c client.Reader, ns string, named bool) (Published, bool, error) {
	var cm corev1.ConfigMap
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: SettingsConfigMap}, &cm)
	if apierrors.IsNotFound(err) || (apierrors.IsForbidden(err) && !named) {
		return Published{}, false, nil
	}
	if err != nil {
		return Published{}, false, err
	}
	p, err := parseSettings(&cm)
	return p, err == nil, err
}

func parseSettings(cm *corev1.ConfigMap) (Published, error) {
	p := Published{Namespace: cm.Namespace}
	if err := json.Unmarshal([]byte(cm.Data[SettingsKey]), &p.Settings); err != nil {
		return Published{}, fmt.Errorf("ConfigMap %s/%s does not hold certrollout controller settings (key %s): %w", cm.Namespace, cm.Name, SettingsKey, err)
	}
	if p.Kind != SettingsKind {
		return Published{}, fmt.Errorf("ConfigMap %s/%s does not hold certrollout controller settings (kind %q, want %s)", cm.Namespace, cm.Name, p.Kind, SettingsKind)
	}
	return p, nil
}
