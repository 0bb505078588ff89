/* fcgi_record: record layout from libfcgi's protocol header (fastcgi.h). */
#include "fcgi_record.h"

#include <fastcgi.h>
#include <string.h>

static void header(uint8_t *out, int type, uint16_t request_id, uint16_t content_len)
{
    out[0] = FCGI_VERSION_1;
    out[1] = (uint8_t)type;
    out[2] = (uint8_t)(request_id >> 8);
    out[3] = (uint8_t)request_id;
    out[4] = (uint8_t)(content_len >> 8);
    out[5] = (uint8_t)content_len;
    out[6] = 0; /* paddingLength: alignment is only a recommendation */
    out[7] = 0;
}

void fcgi_record_stdout_header(uint8_t out[FCGI_RECORD_HEADER_LEN], uint16_t request_id,
                               uint16_t content_len)
{
    header(out, FCGI_STDOUT, request_id, content_len);
}

void fcgi_record_end_request(uint8_t out[FCGI_RECORD_END_REQUEST_LEN], uint16_t request_id)
{
    header(out, FCGI_STDOUT, request_id, 0);
    header(out + 8, FCGI_END_REQUEST, request_id, 8);
    memset(out + 16, 0, 8); /* appStatus 0, protocolStatus FCGI_REQUEST_COMPLETE (0) */
    out[16 + 4] = FCGI_REQUEST_COMPLETE;
}
