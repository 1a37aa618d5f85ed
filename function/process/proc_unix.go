//go:build unix

package process

import (
	"os/exec"
	"syscall"
)

// configureProcess puts the process in its own group, so that stopping it
// also stops what it started (a shell script's children).
func configureProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcess(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
