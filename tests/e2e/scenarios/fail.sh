# SPDX-License-Identifier: GPL-2.0-or-later
# Always fails with status 3: checks that the testbed reports a guest's failure.
echo "failing on purpose"
exit 3
