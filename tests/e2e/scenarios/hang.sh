# SPDX-License-Identifier: GPL-2.0-or-later
# Never finishes: checks the testbed's --timeout handling.
echo "hanging on purpose"
while :; do sleep 3600; done
