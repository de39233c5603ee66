//go:build !unix

package pgtest

import "os/exec"

type credential struct{}

func serverUser(dir string) (*credential, error) { return nil, nil }
func chown(path string, cred *credential) error  { return nil }
func setUser(cmd *exec.Cmd, cred *credential)    {}
