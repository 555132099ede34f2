/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The event and message numbers both the public header and the device's
 * header define. Expanded twice: in pub_consts.c, which sees only the public
 * header, and in test_apertnic.c, which sees the device's; the test compares.
 */
#ifndef APN_TEST_PUB_CONSTS_H
#define APN_TEST_PUB_CONSTS_H

#define APN_SHARED_CONSTS \
	APN_EV_CONNECT, APN_EV_ACCEPT, APN_EV_CLOSE, APN_EV_ALIVE, APN_EV_ALIVEACK, \
	APN_EV_ERROR_MSG, APN_EV_EVENT, APN_EV_VAR, APN_EV_RX_DROP, APN_EV_TX_ERROR, \
	APN_EV_READ_DONE, APN_EV_PUT_DONE, APN_EV_GET_DONE, APN_EV_OVERFLOW, \
	APN_EV_F_POSTED, APN_EV_F_APERTURE, \
	APN_MSG_CONNECT, APN_MSG_ACCEPT, APN_MSG_CLOSE, APN_MSG_ALIVE, APN_MSG_ALIVEACK, \
	APN_MSG_ERROR

extern const unsigned apn_pub_consts[];
extern const unsigned apn_pub_consts_count;

#endif /* APN_TEST_PUB_CONSTS_H */
