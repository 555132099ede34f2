// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The public header's own copies of the event and message numbers, compiled
 * without apertnic_hw.h (as applications see them): test_apertnic.c compares
 * them with the device's.
 */
#include <apertnic/apertnic.h>

#include "pub_consts.h"

#ifdef APERTNIC_HW_H
#error "this file must see the public header's definitions, not the device's"
#endif

const unsigned apn_pub_consts[] = { APN_SHARED_CONSTS };
const unsigned apn_pub_consts_count = sizeof(apn_pub_consts) / sizeof(apn_pub_consts[0]);
