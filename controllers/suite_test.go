package controllers

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	capacityv1alpha1 "github.com/claudecap/claudecap/api/v1alpha1"
	"github.com/claudecap/claudecap/internal/kubeenv"
	"github.com/claudecap/claudecap/internal/redislog"
)

// k8sClient talks to the suite's real kube-apiserver; a manager running the
// reconciler is started against the same server.
var k8sClient client.Client

// testReconciler is the reconciler the suite's manager runs, for tests that simulate an
// operator restart by dropping its memory.
var testReconciler *ClaudeCapacityReconciler

// testOrgReconciler is the suite's ClaudeOrganization controller.
var testOrgReconciler *ClaudeOrganizationReconciler

// operatorNamespace is the suite's operator namespace: organizations' password Secrets.
const operatorNamespace = "claudecap-system"

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false), zap.Level(zapLevel())))
	// go-redis logs every failed dial; the tests that stop Redis read the condition instead.
	redislog.Install(ctrl.Log.WithName("redis"))
	env, err := kubeenv.NewEnvironment()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()

	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(capacityv1alpha1.AddToScheme(scheme))

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	must(err)
	must(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}))

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	must(err)
	ctrls, err := Setup(mgr, Options{OperatorNamespace: operatorNamespace})
	must(err)
	testReconciler, testOrgReconciler = ctrls.Capacity, ctrls.Organization

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	return code
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// zapLevel keeps the manager quiet unless a test run asks for its logs.
func zapLevel() zapcore.Level {
	if os.Getenv("CLAUDECAP_TEST_LOGS") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// newNamespace creates a fresh namespace so tests do not see each other's objects.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ccap-test-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	// envtest has no namespace controller: delete the test's ClaudeCapacities, so that the
	// manager stops polling Redis servers whose ports a later test may get.
	t.Cleanup(func() {
		_ = k8sClient.DeleteAllOf(context.Background(), &capacityv1alpha1.ClaudeCapacity{}, client.InNamespace(ns.Name))
	})
	return ns.Name
}
