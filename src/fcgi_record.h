/* fcgi_record: FastCGI record headers for the responses that the event loop
 * writes itself, after libfcgi has read the request (FastCGI spec §3.3, §5.5).
 * Pure; writes into caller arrays. */
#ifndef LITEPUSH_FCGI_RECORD_H
#define LITEPUSH_FCGI_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FCGI_RECORD_HEADER_LEN 8
/* A record carries at most 65535 content bytes (16-bit contentLength). */
#define FCGI_RECORD_CONTENT_MAX 65535
#define FCGI_RECORD_END_REQUEST_LEN 24 /* empty FCGI_STDOUT + FCGI_END_REQUEST */

/* Writes the header of an FCGI_STDOUT record with content_len bytes. */
void fcgi_record_stdout_header(uint8_t out[FCGI_RECORD_HEADER_LEN], uint16_t request_id,
                               uint16_t content_len);
/* Writes the end of a response: the empty FCGI_STDOUT record that closes
 * the stream, then FCGI_END_REQUEST with FCGI_REQUEST_COMPLETE. */
void fcgi_record_end_request(uint8_t out[FCGI_RECORD_END_REQUEST_LEN], uint16_t request_id);

#endif
