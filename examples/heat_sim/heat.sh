#!/bin/sh
# A small simulation that is not Python: 1-D heat diffusion on a rod of N cells (ends held at 0),
# explicit steps of DT from a hot spot in the middle. Each step appends step,energy,max_temp to
# metrics.csv; at the end the final profile goes to profile.txt. The explicit scheme is stable
# only while r = alpha*dt/dx^2 <= 0.5: beyond, it blows up, says so on stderr and exits 3.
#
#   sh heat.sh --dt 0.001 --n 20 --steps 200 --alpha 1.0
set -e
dt=0.001
n=20
steps=200
alpha=1.0
while [ $# -gt 0 ]; do
  case "$1" in
    --dt) dt=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --alpha) alpha=$2; shift 2 ;;
    *) echo "heat.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

awk -v dt="$dt" -v n="$n" -v steps="$steps" -v alpha="$alpha" '
BEGIN {
  dx = 1.0 / n
  r = alpha * dt / (dx * dx)
  printf "heat: %d cells, dt=%g, r=%g\n", n, dt, r > "/dev/stderr"
  for (i = 0; i < n; i++) u[i] = (i == int(n / 2)) ? 1.0 / dx : 0
  print "step,energy,max_temp" > "metrics.csv"
  for (s = 0; s < steps; s++) {
    for (i = 0; i < n; i++) {
      left = (i > 0) ? u[i - 1] : 0
      right = (i < n - 1) ? u[i + 1] : 0
      v[i] = u[i] + r * (left - 2 * u[i] + right)
    }
    energy = 0
    top = 0
    for (i = 0; i < n; i++) {
      u[i] = v[i]
      energy += u[i] * u[i] * dx
      if (u[i] > top) top = u[i]
    }
    printf "%d,%.6g,%.6g\n", s, energy, top > "metrics.csv"
    fflush("metrics.csv")
    if (energy > 1e6) {
      printf "heat: unstable at step %d: r=%g > 0.5, make dt smaller or n smaller\n", s, r > "/dev/stderr"
      exit 3
    }
  }
  for (i = 0; i < n; i++) printf "%g\n", u[i] > "profile.txt"
  printf "%g\n", r > "r.txt"
}'

# Record the end through the job's run (hpctrack finds it from the environment).
hpctrack summary final_energy="$(tail -n 1 metrics.csv | cut -d, -f2)" r="$(cat r.txt)" outcome=stable
hpctrack artifact profile.txt
