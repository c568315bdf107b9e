#!/bin/sh
# Resumes from its own checkpoint file: steps 0..5, a checkpoint "restart at 2" once step 2 is
# done; the first attempt fails at step 3. Each step is logged with `hpctrack log --step` and
# appended to m.csv; a value says which attempt logged it.
if [ -f ckpt ]; then i=$(cat ckpt); else i=0; fi
[ -f m.csv ] || echo "step,loss" > m.csv
while [ $i -lt 6 ]; do
  hpctrack log acc=$((i + 100 * HPCTRACK_ATTEMPT)) --step $i
  echo "$i,$((i + 100 * HPCTRACK_ATTEMPT))" >> m.csv
  if [ $i -eq 2 ]; then echo 2 > ckpt; fi
  if [ $i -eq 3 ] && [ "$HPCTRACK_ATTEMPT" = 1 ]; then echo "crashed at step 3" >&2; exit 1; fi
  i=$((i + 1))
done
