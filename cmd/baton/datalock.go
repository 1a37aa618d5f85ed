package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// lockFile is the file in a data directory whose exclusive lock makes one
// process its only owner: two engines on one embedded database would run
// the same invocations twice.
const lockFile = "baton.lock"

// lockHolder is what the owner of a data directory writes into its lock
// file, so that a process turned away can say who holds it.
type lockHolder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	URL     string    `json:"url,omitempty"`
	Since   time.Time `json:"since"`
}

func (h lockHolder) String() string {
	s := fmt.Sprintf("`baton %s` (pid %d", h.Command, h.PID)
	if h.URL != "" {
		s += ", serving " + h.URL
	}
	return s + ")"
}

// errDataDirHeld is returned when another process owns the data directory.
type errDataDirHeld struct {
	dir string
	// command is the subcommand that was turned away.
	command string
	holder  *lockHolder // nil when the lock file could not be read
}

func (e *errDataDirHeld) Error() string {
	who := "another baton process"
	if e.holder != nil {
		who = e.holder.String()
	}
	msg := fmt.Sprintf("data directory %s is in use by %s", e.dir, who)
	if e.holder == nil || e.holder.URL == "" {
		return msg + "; wait for it to finish, or give another --data"
	}
	switch e.command {
	case "run":
		return msg + "; run the workflow on that server (baton workflow apply FILE --server " + e.holder.URL +
			", then baton invoke --server " + e.holder.URL + "), or give another --data"
	case "server":
		return msg + "; stop it first, or give another --data"
	}
	return msg + "; use --server " + e.holder.URL + " instead of --data"
}

// dataLock is a held lock on a data directory; the lock dies with the
// process, so a crashed owner leaves nothing to clean up.
type dataLock struct {
	f    *os.File
	info lockHolder
}

// lockDataDir takes the data directory's lock for command (the baton
// subcommand, e.g. "server", serving the API at url if it is not "") or
// fails at once with errDataDirHeld. It creates the directory if needed.
func lockDataDir(dir, command, url string) (*dataLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !held {
		holder := readHolder(f)
		f.Close()
		return nil, &errDataDirHeld{dir: dir, command: command, holder: holder}
	}
	l := &dataLock{f: f, info: lockHolder{PID: os.Getpid(), Command: command, URL: url, Since: time.Now().UTC().Truncate(time.Second)}}
	if err := l.write(); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

func (l *dataLock) write() error {
	data, _ := json.Marshal(l.info)
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("writing %s: %w", l.f.Name(), err)
	}
	if _, err := l.f.WriteAt(append(data, '\n'), 0); err != nil {
		return fmt.Errorf("writing %s: %w", l.f.Name(), err)
	}
	return nil
}

// release gives the directory up. The file stays: removing it would let a
// process that opened it just before lock an unlinked file.
func (l *dataLock) release() error {
	if l == nil {
		return nil
	}
	return l.f.Close() // closing the last descriptor drops the lock
}

func readHolder(f *os.File) *lockHolder {
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return nil
	}
	var h lockHolder
	if json.Unmarshal([]byte(strings.TrimSpace(string(data))), &h) != nil || h.PID == 0 {
		return nil
	}
	return &h
}
