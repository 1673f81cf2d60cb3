#!/usr/bin/perl
# Verify every DKIM signature of the message on stdin with Perl's Mail::DKIM, an
# implementation independent of dkimpy. Public keys come from the command line
# ("selector._domainkey.domain=v=DKIM1; k=rsa; p=..."), never from the network.
# Prints one "result algorithm selector" line per signature.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

package FixtureResolver;
sub new { my ($class, %records) = @_; return bless { records => \%records }, $class }
sub errorstring { return 'NOERROR' }
sub send {
    my ($self, $name, $type) = @_;
    my $packet = Net::DNS::Packet->new($name, $type);
    my $record = $self->{records}{lc $name};
    if (defined $record && uc $type eq 'TXT') {
        my @chunks = unpack('(A255)*', $record);
        $packet->push(answer => Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => [@chunks]));
    } else {
        $packet->header->rcode('NXDOMAIN');
    }
    return $packet;
}

package main;
my %records = map { my ($name, $value) = split /=/, $_, 2; (lc $name, $value) } @ARGV;
Mail::DKIM::DNS::resolver(FixtureResolver->new(%records));
my $verifier = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\015\012/;
    $verifier->PRINT($line);
}
$verifier->CLOSE;
my $ok = 1;
for my $signature ($verifier->signatures) {
    my $result = $signature->result;
    print join(" ", $result, $signature->algorithm, $signature->selector, $signature->result_detail), "\n";
    $ok = 0 if $result ne 'pass';
}
exit($ok && scalar($verifier->signatures) ? 0 : 1);
