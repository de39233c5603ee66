package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is where the machine's and this process's CPU time stood at one
// moment. The difference of two samples says how busy the cores were and how
// much of that was the load generator itself (the server and the baselines'
// databases are the rest).
type cpuSample struct {
	at         time.Time
	busy, all  float64 // machine-wide, in clock ticks (/proc/stat)
	self       time.Duration
	haveSystem bool
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 5 && fields[0] == "cpu" {
			for i, v := range fields[1:] {
				x, _ := strconv.ParseFloat(v, 64)
				if i >= 8 { // guest time is already in user
					break
				}
				s.all += x
				if i != 3 && i != 4 { // idle, iowait
					s.busy += x
				}
			}
			s.haveSystem = true
		}
	}
	return s
}

// cpuUse is CPU use between two samples, in cores (2.0 = both cores of a
// 2-core machine busy the whole time).
type cpuUse struct {
	Busy   float64 `json:"busyCores"`   // the whole machine
	Client float64 `json:"clientCores"` // the load generator
}

func cpuBetween(a, b cpuSample, cores int) cpuUse {
	var u cpuUse
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return u
	}
	u.Client = (b.self - a.self).Seconds() / wall
	if a.haveSystem && b.haveSystem && b.all > a.all {
		u.Busy = (b.busy - a.busy) / (b.all - a.all) * float64(cores)
	}
	return u
}
