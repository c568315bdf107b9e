#!/bin/sh
# An --exec job's program that records both ways: `hpctrack log` (acc) and rows appended to
# metrics.jsonl (loss, and a text column that is skipped). Arguments: LR SEED.
lr=$1
seed=$2
i=0
while [ $i -lt 3 ]; do
  hpctrack log acc=$((seed * 10 + i)) --step $i
  printf '{"step": %d, "loss": %s, "phase": "train"}\n' $i "$lr" >> metrics.jsonl
  i=$((i + 1))
done
echo "weights of $lr/$seed" > model.txt
hpctrack artifact model.txt
hpctrack summary final_acc=$((seed * 10 + 2)) note="seed $seed"
