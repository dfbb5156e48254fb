// Command timeout prints the go test -timeout a certification needs, so that make certify
// never ends in go test's panic on a slow CPU appliance:
//
//	go test ./acceptance -timeout "$(go run ./acceptance/timeout -request-timeout 5m)" ...
package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/bench"
	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/one"
)

func main() {
	requestTimeout := flag.Duration("request-timeout", 5*time.Minute, "the suite's -request-timeout")
	deploy := flag.Bool("deploy", false, "deploy mode: add the default -one.image-timeout, -one.boot-timeout and -one.ready-timeout")
	benchRun := flag.Bool("bench", false, "add what -bench with its default bounds may take")
	reconfigure := flag.Bool("reconfigure", false, "deploy mode with -one.reconfigure: add the reboot's -one.boot-timeout and -one.ready-timeout")
	flag.Parse()
	d := copilot.SuiteTimeout(*requestTimeout)
	if *deploy {
		d += one.DefaultImageTimeout + one.DefaultBootTimeout + one.DefaultReadyTimeout
	}
	if *benchRun {
		d += bench.DefaultBudget(*requestTimeout)
	}
	if *reconfigure {
		d += one.DefaultBootTimeout + one.DefaultReadyTimeout
	}
	fmt.Println(d)
}
