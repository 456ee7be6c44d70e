package kubetest

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestScratchTiming(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		env, err := New(context.Background(), Options{ExtraAPIServerArgs: []string{"-v=1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("startup %v", time.Since(t0))
		data, _ := os.ReadFile(env.apiserver.logPath)
		if i == 0 {
			os.WriteFile("/tmp/apiserver.log", data, 0o644)
			e, _ := os.ReadFile(env.etcd.logPath)
			os.WriteFile("/tmp/etcd.log", e, 0o644)
		}
		t1 := time.Now()
		env.apiserver.stop(10 * time.Second)
		t.Logf("apiserver stop %v", time.Since(t1))
		if i == 0 {
			data, _ := os.ReadFile(env.apiserver.logPath)
			os.WriteFile("/tmp/apiserver.log", data, 0o644)
		}
		env.Stop()
		t.Logf("stop %v", time.Since(t1))
	}
}
