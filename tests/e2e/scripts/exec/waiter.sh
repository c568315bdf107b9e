#!/bin/sh
# Leaves its pid and a background child's in sh.pid and child.pid, then waits for the child.
echo $$ > sh.pid
sleep 600 &
echo $! > child.pid
hpctrack log up=1 --step 0
wait
