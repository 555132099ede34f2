// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The public header's own copies of the event and message numbers, compiled
 * without apertnic_hw.h (as applications see them): test_apertnic.c compares
 * them with the device's.
 */
#include <apertnic/apertnic.h>

#ifdef APERTNIC_HW_H
#error "this file must see the public header's definitions, not the device's"
#endif

const unsigned apn_pub_consts[] = {
	APN_EV_CONNECT, APN_EV_ACCEPT, APN_EV_CLOSE, APN_EV_ALIVE, APN_EV_ALIVEACK,
	APN_EV_ERROR_MSG, APN_EV_EVENT, APN_EV_VAR, APN_EV_RX_DROP, APN_EV_TX_ERROR,
	APN_EV_READ_DONE, APN_EV_PUT_DONE, APN_EV_GET_DONE, APN_EV_OVERFLOW,
	APN_EV_F_POSTED, APN_EV_F_APERTURE,
	APN_MSG_CONNECT, APN_MSG_ACCEPT, APN_MSG_CLOSE, APN_MSG_ALIVE, APN_MSG_ALIVEACK,
	APN_MSG_ERROR,
};
const unsigned apn_pub_consts_count = sizeof(apn_pub_consts) / sizeof(apn_pub_consts[0]);
